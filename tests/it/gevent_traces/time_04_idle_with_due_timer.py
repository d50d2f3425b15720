# main calls idle() with a ready greenlet and a spawn_later(0) pending.
import gevent
t = []
gevent.spawn_later(0, t.append, "later0")
gevent.spawn(t.append, "y")
gevent.idle()
t.append("main-idle")
gevent.sleep(0.01)
t.append("main")
print(t)
