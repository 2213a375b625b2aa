"""Checks that a built module loads into NEST and lists the model's state (run by hhc in the
Python of the NEST it was built for). Argument: JSON with lib, module, model."""
import ctypes, json, os, sys
a = json.loads(sys.argv[1])
os.environ["LD_LIBRARY_PATH"] = a["lib"] + ":" + os.environ.get("LD_LIBRARY_PATH", "")
import nest
nest.set_verbosity("M_ERROR")
try:
    nest.Install(a["module"])
except Exception as exc:
    try:
        ctypes.CDLL(os.path.join(a["lib"], a["module"] + ".so"))
        print("nest.Install failed:", exc)
    except OSError as err:
        print("the module does not load:", err)
    sys.exit(1)
n = nest.Create(a["model"], 1)
print(json.dumps(sorted(n.get().keys())))
