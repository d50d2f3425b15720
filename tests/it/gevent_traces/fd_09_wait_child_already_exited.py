# A greenlet waits for a child that has already exited (the thread slept
# past its exit): does the wait still yield to the loop first?
import gevent, time
from gevent import subprocess
t = []
def waiter():
    p = subprocess.Popen(["true"])
    time.sleep(0.1)
    t.append("b-exit-%d" % p.wait())
b = gevent.spawn(waiter)
x = gevent.spawn(t.append, "x")
gevent.sleep(0)
t.append("main-runs")
b.join()
t.append("main")
print(t)
