# Debian 12's torchrun (torch 1.13 on Python 3.11) cannot parse its own default
# redirect setting ("0"); this runs torchrun with that parse fixed.
import re, sys
from torch.distributed.elastic.multiprocessing import api
_orig = api.Std.from_str.__func__
def from_str(cls, vm):
    if re.fullmatch(r"\d", vm):
        return api.Std(int(vm))
    return _orig(cls, vm)
api.Std.from_str = classmethod(from_str)
from torch.distributed.run import main
sys.exit(main())
