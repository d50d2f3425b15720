# link, link_exception, link_value and a join waiter on a greenlet that
# returns a value: which fire, in which order.
import gevent
t = []
g = gevent.spawn(lambda: t.append("g") or 5)
g.link(lambda g: t.append("link-a"))
g.link_exception(lambda g: t.append("exc-b"))
g.link_value(lambda g: t.append("value-c:%s" % g.value))
w = gevent.spawn(lambda: (g.join(), t.append("waiter")))
g.link(lambda g: t.append("link-d"))
gevent.sleep(0)   # g and w start; w registers its join after link-d
t.append("main-sleep0")
gevent.joinall([g, w])
t.append("main")
print(t)
