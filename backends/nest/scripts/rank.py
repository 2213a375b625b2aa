# hhc NEST run script: needs only nest and numpy. Every rank creates the whole
# population; NEST places neurons on ranks/threads; each rank writes the spikes and samples of its
# own neurons to rank<R>.npz; hhc gathers them.
import json, os, sys, time
import numpy as np
spec = json.load(open(sys.argv[1]))
os.environ["LD_LIBRARY_PATH"] = spec["lib_dir"] + ":" + os.environ.get("LD_LIBRARY_PATH", "")
import nest
nest.set_verbosity("M_ERROR")
nest.ResetKernel()
nest.SetKernelStatus({"resolution": spec["dt_ms"], "local_num_threads": spec["threads"], "print_time": False})
nest.Install(spec["module"])
rank, nproc = nest.Rank(), nest.NumProcesses()
t_setup = time.perf_counter()
pop = nest.Create(spec["model"], spec["n"])
first = pop[0].global_id
flags = pop.local
flags = [flags] if isinstance(flags, bool) else list(flags)
ids = [g for g, here in zip(pop.tolist(), flags) if here]
idx = np.asarray(ids, dtype=np.int64) - first
init = np.load(spec["init"])
if len(idx):
    local = nest.NodeCollection(ids)
    local.set({name: init[name][idx].tolist() for name in init.files})
    local.set({"V_m_old": init["V_m"][idx].tolist()})
for name, value in spec["parameters"].items():
    pop.set({name: value})
sr = None
if spec["spikes"] is not None:
    sr = nest.Create("spike_recorder")
    nest.Connect(pop if spec["spikes"] == "all" else pop[spec["spikes"]], sr)
meters = []
for g, tr in enumerate(spec["traces"]):
    for w, (a, b) in enumerate(tr["windows"]):
        params = {"interval": tr["interval_ms"], "record_from": tr["variables"], "start": a}
        if b is not None:
            params["stop"] = b
        mm = nest.Create("multimeter", params=params)
        nest.Connect(mm, pop[tr["neurons"]])
        meters.append((g, w, mm))
setup = time.perf_counter() - t_setup
dt = spec["dt_ms"]
total = sum(p["steps"] for p in spec["phases"])
chunk = max(1, min(spec["chunk_steps"], total))
done = 0
t0, c0 = time.perf_counter(), time.process_time()
nest.Prepare()
for phase in spec["phases"]:
    for name, value in phase["inputs"].items():
        pop.set({name: value})
    left = phase["steps"]
    while left > 0:
        k = min(chunk, left)
        nest.Run(k * dt)
        left -= k
        done += k
        if rank == 0:
            print("HHC-PROGRESS", done * dt * 1e-3, flush=True)
# A multimeter's samples of the last min_delay interval are only delivered by a later step:
# run one min_delay past the end and keep only what lies within the protocol.
end = total * dt
if meters:
    nest.Run(nest.GetKernelStatus("min_delay"))
nest.Cleanup()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
out = {}
if sr is not None:
    ev = sr.get("events")
    keep = np.asarray(ev["times"], dtype=float) <= end + 1e-9
    out["spike_i"] = np.asarray(ev["senders"], dtype=np.int64)[keep] - first
    out["spike_t"] = np.asarray(ev["times"], dtype=float)[keep]
for g, w, mm in meters:
    ev = mm.get("events")
    keep = np.asarray(ev["times"], dtype=float) <= end + 1e-9
    out[f"g{g}w{w}_i"] = np.asarray(ev["senders"], dtype=np.int64)[keep] - first
    out[f"g{g}w{w}_t"] = np.asarray(ev["times"], dtype=float)[keep]
    for var in spec["traces"][g]["variables"]:
        out[f"g{g}w{w}_{var}"] = np.asarray(ev[var], dtype=float)[keep]
np.savez(os.path.join(spec["out"], f"rank{rank}.npz"), **out)
# hhc's fixed-step models note when v stopped being a finite number (hhc_bad_t >= 0)
bad = []
if spec["check_finite"] and len(idx):
    when = np.asarray(nest.NodeCollection(ids).get("hhc_bad_t"), dtype=float).reshape(-1)
    bad = [[int(i), float(w)] for i, w in zip(idx, when) if w >= 0]
with open(os.path.join(spec["out"], f"rank{rank}.json"), "w") as f:
    json.dump({"rank": rank, "num_processes": nproc, "threads": spec["threads"], "wall_time_s": wall,
               "cpu_time_s": cpu, "setup_time_s": setup, "local_neurons": int(len(idx)), "nest_version": nest.__version__,
               "have_mpi": bool(nest.build_info["have_mpi"]), "nonfinite": len(bad), "nonfinite_first": bad[:20]}, f)
