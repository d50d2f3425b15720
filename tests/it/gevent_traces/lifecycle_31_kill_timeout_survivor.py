# kill with a timeout on a greenlet that catches GreenletExit and goes on
# sleeping: kill returns after the timeout, the greenlet lives; a second
# kill ends it.
import gevent
t = []
def body():
    try:
        gevent.sleep(10)
    except gevent.GreenletExit:
        t.append("g-caught")
    try:
        gevent.sleep(10)
    finally:
        t.append("g-finally")
g = gevent.spawn(body)
g.link(lambda g: t.append("link"))
gevent.sleep(0)
g.kill(timeout=0.02)
t.append("kill1:dead=%s" % g.dead)
g.kill()
gevent.sleep(0)
t.append("kill2:dead=%s" % g.dead)
print(t)
