# A greenlet catches the kill and returns a value: link_value fires with
# it and join gives it. link_value also fires for a plain kill in gevent
# (GreenletExit counts as success).
import gevent
t = []
def catcher():
    try:
        gevent.sleep(10)
    except gevent.GreenletExit:
        t.append("caught")
    return 5
def plain():
    gevent.sleep(10)
a = gevent.spawn(catcher)
b = gevent.spawn(plain)
a.link_value(lambda g: t.append("a-value:%s" % g.value))
b.link_value(lambda g: t.append("b-value:" + type(g.value).__name__))
b.link_exception(lambda g: t.append("b-exc"))
gevent.sleep(0)
a.kill()
b.kill()
gevent.sleep(0)
t.append("a=%s b.successful=%s" % (a.get(), b.successful()))
print(t)
