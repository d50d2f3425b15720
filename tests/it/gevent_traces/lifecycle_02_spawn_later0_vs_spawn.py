# spawn_later(0) is a timer: it starts after the greenlets spawned later
# and after the yields they make while the ready queue drains.
import gevent
t = []
def f(n):
    t.append(n)
def yielder(n):
    t.append(n + "0")
    gevent.sleep(0)
    t.append(n + "1")
    gevent.sleep(0)
    t.append(n + "2")
l = gevent.spawn_later(0, f, "later0")
y = gevent.spawn(yielder, "y")
s = gevent.spawn(f, "s")
gevent.sleep(0)
t.append("main-sleep0")
l.join()
t.append("main-joined")
print(t)
