# A Timeout armed in a greenlet expires while its kill cleanup blocks:
# in gevent the Timeout replaces the GreenletExit and the greenlet ends
# failed (link_exception fires).
import gevent
t = []
def body():
    tm = gevent.Timeout(0.01)
    tm.start()
    try:
        gevent.sleep(10)
    finally:
        t.append("g-cleanup-start")
        gevent.sleep(0.05)
        t.append("g-cleanup-end")
g = gevent.spawn(body)
g.link_exception(lambda g: t.append("exc:" + type(g.exception).__name__))
g.link_value(lambda g: t.append("value"))
gevent.sleep(0)
g.kill()
t.append("main:" + type(g.exception).__name__)
gevent.sleep(0)
print(t)
