# A spawned greenlet does not see its spawner's value; each keeps its own
# across yields; main's is untouched.
import gevent
from gevent.local import local
t = []
loc = local()
loc.v = "main"
def child(n):
    t.append(n + "-sees-" + getattr(loc, "v", "none"))
    loc.v = n
    gevent.sleep(0)
    t.append(n + "-keeps-" + loc.v)
    gevent.spawn(lambda: t.append(n + "-child-sees-" + getattr(loc, "v", "none"))).join()
a = gevent.spawn(child, "a")
b = gevent.spawn(child, "b")
gevent.joinall([a, b])
t.append("main-" + loc.v)
print(t)
