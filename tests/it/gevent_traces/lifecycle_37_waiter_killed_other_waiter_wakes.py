# Two greenlets wait for g; the first is killed while waiting; g dies and
# the second wakes; the killed one's link runs before that.
import gevent
from gevent.event import Event
t = []
ev = Event()
g = gevent.spawn(lambda: (ev.wait(), t.append("g")))
def waiter(n):
    try:
        g.join()
        t.append(n + "-woke")
    finally:
        t.append(n + "-finally")
w1 = gevent.spawn(waiter, "w1")
w2 = gevent.spawn(waiter, "w2")
w1.link(lambda x: t.append("w1-link"))
gevent.sleep(0)
w1.kill()
ev.set()
w2.join()
t.append("main")
print(t)
