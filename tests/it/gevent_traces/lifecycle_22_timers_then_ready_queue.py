# Two sleepers due together: the first, on waking, spawns x and yields;
# the second is woken by the same turn of timers.
import gevent
t = []
def s1():
    gevent.sleep(0.01)
    t.append("s1-woke")
    gevent.spawn(lambda: t.append("x"))
    gevent.sleep(0)
    t.append("s1-after-yield")
def s2():
    gevent.sleep(0.01)
    t.append("s2-woke")
a = gevent.spawn(s1)
b = gevent.spawn(s2)
gevent.sleep(0)
t.append("main-sleep0")
gevent.joinall([a, b])
t.append("main")
print(t)
