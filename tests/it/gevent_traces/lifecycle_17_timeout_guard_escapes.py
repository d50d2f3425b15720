# A Timeout started in a greenlet escapes it: finally runs, link_exception
# fires, link_value does not, main's join returns; the order of all that.
import gevent
t = []
def body():
    gevent.Timeout(0.01).start()
    try:
        gevent.sleep(1)
    finally:
        t.append("g-finally")
g = gevent.spawn(body)
g.link_exception(lambda g: t.append("exc:" + type(g.exception).__name__))
g.link_value(lambda g: t.append("value"))
g.link(lambda g: t.append("link"))
g.join()
t.append("main-joined:" + type(g.exception).__name__)
gevent.sleep(0)
t.append("main-sleep0")
print(t)
