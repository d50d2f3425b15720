# The same links on a greenlet that raises; main joins and sees the error.
import gevent
t = []
def body():
    t.append("g")
    raise ValueError("boom")
g = gevent.spawn(body)
g.link(lambda g: t.append("link-a"))
g.link_exception(lambda g: t.append("exc-b:%s" % g.exception))
g.link_value(lambda g: t.append("value-c"))
g.link(lambda g: t.append("link-d"))
g.join()
t.append("main-joined:%s" % g.exception)
gevent.sleep(0)
t.append("main-sleep0")
print(t)
