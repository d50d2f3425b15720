# A child raises; its link_exception callback blocks (sleep) before it
# finishes; main is joining: main resumes when the child is dead, without
# waiting for the callback.
import gevent
t = []
def body():
    t.append("child")
    raise ValueError("boom")
def cb(g):
    t.append("cb-start")
    gevent.sleep(0.02)
    t.append("cb-end")
g = gevent.spawn(body)
g.link_exception(cb)
g.join()
t.append("main-joined:" + type(g.exception).__name__)
gevent.sleep(0.05)
t.append("main-slept")
print(t)
