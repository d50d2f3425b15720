# A timer armed after the thread was blocked (time.sleep) for 30 ms: is
# its delay counted from the stale loop time or from now?
import gevent, time
t = []
a = gevent.spawn_later(0.02, t.append, "a20")
time.sleep(0.03)
b = gevent.spawn_later(0.01, t.append, "b10")
gevent.joinall([a, b])
t.append("main")
print(t)
