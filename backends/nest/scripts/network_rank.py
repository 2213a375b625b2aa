# hhc NEST network run script: needs only nest and numpy. Every rank creates every population
# (one NESTML model per cell), one spike_generator per source neuron (hhc's drawn trains), and connects
# hhc's drawn edge lists one-to-one with their weights, delays and receptor ports, so every rank and
# thread count builds the same network. Each rank writes its own neurons' spikes (global hhc indices:
# population offset + index) and samples to rank<R>.npz; hhc gathers them.
import json, os, sys, time
import numpy as np
spec = json.load(open(sys.argv[1]))
os.environ["LD_LIBRARY_PATH"] = ":".join(spec["lib_dirs"] + [os.environ.get("LD_LIBRARY_PATH", "")])
import nest
nest.verbosity = nest.VerbosityLevel.ERROR
nest.ResetKernel()
kernel = {"resolution": spec["dt_ms"], "local_num_threads": spec["threads"], "print_time": False,
          "rng_seed": spec["seed"] % (2 ** 31 - 2) + 1}     # the noise's random numbers (NEST wants >= 1)
if spec["delays_ms"]:
    kernel.update({"min_delay": spec["delays_ms"][0], "max_delay": spec["delays_ms"][1]})
nest.SetKernelStatus(kernel)
for module in spec["modules"]:
    nest.Install(module)
rank, nproc = nest.Rank(), nest.NumProcesses()
t_setup = time.perf_counter()
data = np.load(spec["data"])
pops, first, local_ids = {}, {}, {}
for p in spec["populations"]:
    pop = nest.Create(p["model"], p["n"])
    pops[p["name"]] = pop
    first[p["name"]] = pop[0].global_id
    flags = pop.local
    flags = [flags] if isinstance(flags, bool) else list(flags)
    ids = [g for g, here in zip(pop.tolist(), flags) if here]
    local_ids[p["name"]] = ids
    idx = np.asarray(ids, dtype=np.int64) - first[p["name"]]
    if len(idx):
        local = nest.NodeCollection(ids)
        # per-neuron parameters first (a time constant changes internals), then the initial states
        values = {name: data[key][idx].tolist() for name, key in p["parameters"].items()}
        if values:
            local.set(values)
        values = {name: data[key][idx].tolist() for name, key in p["states"].items()}
        values["V_m_old"] = values["V_m"]
        local.set(values)
gens = {}
for s in spec["sources"]:
    g = nest.Create("spike_generator", s["n"])
    i, t = data[s["key"] + "_i"], data[s["key"] + "_t"]
    order = np.argsort(i, kind="stable")
    starts = np.searchsorted(i[order], np.arange(s["n"] + 1))
    g.set([{"spike_times": t[order[starts[k]:starts[k + 1]]].tolist()} for k in range(s["n"])])
    gens[s["name"]] = g
for proj in spec["projections"]:
    pre_first = first[proj["source"]] if proj["source"] in pops else gens[proj["source"]][0].global_id
    key = proj["key"]
    if len(data[key + "_pre"]) == 0:
        continue
    model = spec["models"][proj["target"]]
    ports = nest.GetDefaults(model).get("receptor_types", {})
    receptor = int(ports.get(proj["port"].upper(), 0)) if ports else 0
    nest.Connect(data[key + "_pre"] + pre_first, data[key + "_post"] + first[proj["target"]], "one_to_one",
                 syn_spec={"synapse_model": "static_synapse", "weight": data[key + "_w"],
                           "delay": data[key + "_d"], "receptor_type": receptor})
connections = int(nest.GetKernelStatus("num_connections"))     # this rank's, before any recorder's
edges_out = None
if spec.get("dump_edges"):
    conns = nest.GetConnections(target=None)
    edges_out = {}
    if len(conns):
        st = conns.get(["source", "target", "weight", "delay", "receptor"])
        edges_out = {k: np.atleast_1d(np.asarray(v)) for k, v in st.items()}
main = spec["main"]
sr = None
if spec["spikes"] is not None:
    sr = nest.Create("spike_recorder")
    for name, pop in pops.items():
        nest.Connect(pop if name != main or spec["spikes"] == "all" else pop[spec["spikes"]], sr)
meters = []
for g, tr in enumerate(spec["traces"]):
    for w, (a, b) in enumerate(tr["windows"]):
        params = {"interval": tr["interval_ms"], "record_from": tr["variables"], "start": a}
        if b is not None:
            params["stop"] = b
        mm = nest.Create("multimeter", params=params)
        nest.Connect(mm, pops[main][tr["neurons"]])
        meters.append((g, w, mm))
setup = time.perf_counter() - t_setup
dt = spec["dt_ms"]
total = sum(p["steps"] for p in spec["phases"])
chunk = max(1, min(spec["chunk_steps"], total))
done = 0
t0, c0 = time.perf_counter(), time.process_time()
nest.Prepare()
for phase in spec["phases"]:
    for name, inputs in phase["inputs"].items():
        if inputs:
            pops[name].set(inputs)
    left = phase["steps"]
    while left > 0:
        k = min(chunk, left)
        nest.Run(k * dt)
        left -= k
        done += k
        if rank == 0:
            print("HHC-PROGRESS", done * dt * 1e-3, flush=True)
end = total * dt
if meters:
    nest.Run(nest.GetKernelStatus("min_delay"))
nest.Cleanup()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
out = {}
if sr is not None:
    ev = sr.get("events")
    keep = np.asarray(ev["times"], dtype=float) <= end + 1e-9
    senders = np.asarray(ev["senders"], dtype=np.int64)[keep]
    glob = np.full(len(senders), -1, np.int64)
    for p in spec["populations"]:
        mine = (senders >= first[p["name"]]) & (senders < first[p["name"]] + p["n"])
        glob[mine] = senders[mine] - first[p["name"]] + p["offset"]
    out["spike_i"] = glob
    out["spike_t"] = np.asarray(ev["times"], dtype=float)[keep]
for g, w, mm in meters:
    ev = mm.get("events")
    keep = np.asarray(ev["times"], dtype=float) <= end + 1e-9
    out[f"g{g}w{w}_i"] = np.asarray(ev["senders"], dtype=np.int64)[keep] - first[main]
    out[f"g{g}w{w}_t"] = np.asarray(ev["times"], dtype=float)[keep]
    for var in spec["traces"][g]["variables"]:
        out[f"g{g}w{w}_{var}"] = np.asarray(ev[var], dtype=float)[keep]
if edges_out is not None:
    # the connections NEST holds (this rank's targets), as hhc indices: each id -> (group, index)
    groups = [(name, first[name], len(pop)) for name, pop in pops.items()] + \
             [(name, g[0].global_id, len(g)) for name, g in gens.items()]
    for end_ in ("source", "target"):
        ids = np.asarray(edges_out.get(end_, []), dtype=np.int64).reshape(-1)
        grp = np.full(len(ids), -1, np.int64)
        loc = np.full(len(ids), -1, np.int64)
        for k, (name, f0, n) in enumerate(groups):
            mine = (ids >= f0) & (ids < f0 + n)
            grp[mine], loc[mine] = k, ids[mine] - f0
        out[f"edges_{end_}_group"], out[f"edges_{end_}_index"] = grp, loc
    out["edges_weight"] = np.asarray(edges_out.get("weight", []), dtype=float).reshape(-1)
    out["edges_delay"] = np.asarray(edges_out.get("delay", []), dtype=float).reshape(-1)
    out["edges_receptor"] = np.asarray(edges_out.get("receptor", []), dtype=np.int64).reshape(-1)
    out["edges_groups"] = np.asarray([g[0] for g in groups])
np.savez(os.path.join(spec["out"], f"rank{rank}.npz"), **out)
bad = []
if spec["check_finite"]:
    for p in spec["populations"]:
        ids = local_ids[p["name"]]
        if not ids:
            continue
        when = np.asarray(nest.NodeCollection(ids).get("hhc_bad_t"), dtype=float).reshape(-1)
        idx = np.asarray(ids, dtype=np.int64) - first[p["name"]] + p["offset"]
        bad += [[int(i), float(w)] for i, w in zip(idx, when) if w >= 0]
local_count = sum(len(v) for v in local_ids.values())
with open(os.path.join(spec["out"], f"rank{rank}.json"), "w") as f:
    json.dump({"rank": rank, "num_processes": nproc, "threads": spec["threads"], "wall_time_s": wall,
               "cpu_time_s": cpu, "setup_time_s": setup, "local_neurons": int(local_count),
               "nest_version": nest.__version__, "have_mpi": bool(nest.build_info["have_mpi"]),
               "nonfinite": len(bad), "nonfinite_first": bad[:20],
               "connections": connections}, f)
