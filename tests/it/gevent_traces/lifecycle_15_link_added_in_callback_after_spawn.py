# A callback of a dying greenlet spawns x, then links cb3 to the (dead)
# greenlet: cb3 joins the running notifier, ahead of x.
import gevent
t = []
g = gevent.spawn(lambda: t.append("g"))
def cb1(gl):
    t.append("cb1")
    gevent.spawn(lambda: t.append("x"))
    gl.link(lambda g: t.append("cb3"))
g.link(cb1)
g.link(lambda g: t.append("cb2"))
gevent.sleep(0)
t.append("main-sleep0")
gevent.sleep(0)
t.append("main-sleep0b")
gevent.sleep(0)
t.append("main-sleep0c")
print(t)
