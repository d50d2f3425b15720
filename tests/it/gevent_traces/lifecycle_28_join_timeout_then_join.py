# join with a timeout that passes leaves the greenlet running; a second
# join gets it; links run once.
import gevent
t = []
def body():
    t.append("g-start")
    gevent.sleep(0.05)
    t.append("g-end")
    return 3
g = gevent.spawn(body)
g.link(lambda g: t.append("link"))
g.join(timeout=0.01)
t.append("join1:dead=%s" % g.dead)
g.join()
t.append("join2:%s" % g.value)
print(t)
