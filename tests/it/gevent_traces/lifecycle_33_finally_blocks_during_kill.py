# A killed greenlet whose cleanup blocks (sleep): gevent switches away in
# the middle of the cleanup and lets others run.
import gevent
t = []
def body():
    try:
        gevent.sleep(10)
    finally:
        t.append("g-cleanup-start")
        gevent.sleep(0.01)
        t.append("g-cleanup-end")
def other():
    for i in range(2):
        t.append("other%d" % i)
        gevent.sleep(0)
g = gevent.spawn(body)
gevent.sleep(0)
o = gevent.spawn(other)
g.kill()
t.append("main-kill-returned")
o.join()
print(t)
