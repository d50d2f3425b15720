# spawn_later with equal and different delays, spawn, and sleep(0) in main.
import gevent
t = []
def f(n):
    t.append(n)
a = gevent.spawn_later(0.02, f, "later20")
b = gevent.spawn_later(0.01, f, "later10a")
c = gevent.spawn_later(0.01, f, "later10b")
d = gevent.spawn_later(0, f, "later0")
e = gevent.spawn(f, "now")
gevent.sleep(0)
t.append("main-sleep0")
gevent.joinall([a, b, c, d, e])
t.append("main")
print(t)
