# A greenlet with a Timeout armed is killed before it expires: it dies
# killed (not timed out), link_exception does not fire, and the timeout
# never hits anything later.
import gevent
t = []
def body():
    tm = gevent.Timeout(0.02)
    tm.start()
    try:
        gevent.sleep(1)
    finally:
        t.append("g-finally")
        tm.cancel()
g = gevent.spawn(body)
g.link_exception(lambda g: t.append("exc"))
g.link(lambda g: t.append("link:" + type(g.exception).__name__ + ":" + str(g.successful())))
gevent.sleep(0)
g.kill()
gevent.sleep(0.05)
t.append("main-slept-past-deadline")
print(t)
