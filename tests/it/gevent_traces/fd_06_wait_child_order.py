# Two greenlets wait for child processes; the one that exits first is
# reported first; main is not blocked meanwhile.
import gevent
from gevent import subprocess
t = []
def waiter(n, cmd):
    p = subprocess.Popen(cmd)
    t.append("%s-exit-%d" % (n, p.wait()))
a = gevent.spawn(waiter, "a", ["sh", "-c", "sleep 0.2; exit 3"])
b = gevent.spawn(waiter, "b", ["sh", "-c", "sleep 0.05"])
gevent.sleep(0)
t.append("main-runs")
gevent.joinall([a, b])
t.append("main")
print(t)
