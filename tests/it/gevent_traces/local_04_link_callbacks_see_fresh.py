# Link callbacks run in greenlets of their own: they see fresh values, not
# the dead greenlet's nor each other's.
import gevent
from gevent.local import local
t = []
loc = local()
def cb(n):
    def f(g):
        t.append(n + "-sees-" + getattr(loc, "v", "none"))
        loc.v = n
    return f
g = gevent.spawn(lambda: setattr(loc, "v", "g"))
g.link(cb("cb1"))
g.link(cb("cb2"))
g.join()
gevent.sleep(0.01)
t.append("main-sees-" + getattr(loc, "v", "none"))
print(t)
