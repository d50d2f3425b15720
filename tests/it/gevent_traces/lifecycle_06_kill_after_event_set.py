# An Event is set (waking g), then g is killed before it ran: gevent's
# Event notifies through a callback queued before the kill's, so g gets
# the wake-up first and finishes.
import gevent
from gevent.event import Event
t = []
ev = Event()
def body():
    try:
        ev.wait()
        t.append("g-woke")
        gevent.sleep(0)
        t.append("g-after-sleep0")
    finally:
        t.append("g-finally")
g = gevent.spawn(body)
gevent.sleep(0)
ev.set()
t.append("main-kill")
g.kill()
t.append("main-kill-returned:" + type(g.exception).__name__ + ":" + str(g.successful()))
print(t)
