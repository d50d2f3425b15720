# Killing a greenlet that is already scheduled to resume from sleep(0): it
# resumes normally first, and the kill lands at its next block.
import gevent
t = []
def body():
    try:
        t.append("g1")
        gevent.sleep(0)
        t.append("g2")
        gevent.sleep(0)
        t.append("g3")
    finally:
        t.append("g-finally")
g = gevent.spawn(body)
gevent.sleep(0)   # g runs g1 and queues itself behind main
t.append("main-kill")
g.kill()
t.append("main-kill-returned")
print(t)
