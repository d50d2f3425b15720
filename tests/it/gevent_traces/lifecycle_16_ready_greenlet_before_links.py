# A greenlet made ready before g dies runs before g's join waiters and
# links; a greenlet spawned by the first callback runs after the others.
import gevent
t = []
def body():
    t.append("g")
    gevent.spawn(lambda: t.append("spawned-by-g"))
    t.append("g-end")
g = gevent.spawn(body)
def cb1(gl):
    t.append("cb1")
    gevent.spawn(lambda: t.append("spawned-by-cb1"))
g.link(cb1)
w = gevent.spawn(lambda: (g.join(), t.append("waiter")))
g.link(lambda gl: t.append("cb2"))
g.join()
t.append("main-joined")
gevent.sleep(0)
t.append("main-sleep0")
print(t)
