# joinall and link callbacks registered before and after it, on two
# greenlets that die in the same turn.
import gevent
t = []
a = b = None
def helper():
    a.link(lambda g: t.append("a-cb2"))
    b.link(lambda g: t.append("b-cb2"))
h = gevent.spawn(helper)
a = gevent.spawn(lambda: t.append("a"))
b = gevent.spawn(lambda: t.append("b"))
a.link(lambda g: t.append("a-cb1"))
b.link(lambda g: t.append("b-cb1"))
gevent.joinall([a, b])
t.append("main-joined")
gevent.sleep(0)
t.append("main-sleep0")
print(t)
