# Greenlets spawned by greenlets: where the children run relative to the
# parents' siblings and to main's join.
import gevent
t = []
def child(n):
    t.append(n)
def parent(n):
    t.append(n)
    gevent.spawn(child, n + "1")
    gevent.spawn(child, n + "2")
    t.append(n + "-end")
a = gevent.spawn(parent, "a")
b = gevent.spawn(parent, "b")
c = gevent.spawn(child, "c")
t.append("main-spawned")
c.join()
t.append("main-joined-c")
gevent.sleep(0)
t.append("main-sleep0")
print(t)
