# A greenlet waiting for a child process is killed; the child runs on, and
# another greenlet's wait gets its exit status.
import gevent
from gevent import subprocess
t = []
p = subprocess.Popen(["sh", "-c", "sleep 0.05; exit 3"])
def a():
    try:
        t.append("a-exit-%d" % p.wait())
    finally:
        t.append("a-finally")
ga = gevent.spawn(a)
gevent.sleep(0)
ga.kill()
t.append("a-killed")
gb = gevent.spawn(lambda: t.append("b-exit-%d" % p.wait()))
gb.join()
t.append("main")
print(t)
