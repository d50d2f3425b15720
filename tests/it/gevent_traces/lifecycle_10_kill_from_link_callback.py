# g1's first link callback kills g2 (parked, with a link of its own); g1
# has a second link. Where do g2's link and the rest of the first callback go?
import gevent
t = []
def g2body():
    try:
        gevent.sleep(10)
    finally:
        t.append("g2-finally")
g1 = gevent.spawn(lambda: t.append("g1"))
g2 = gevent.spawn(g2body)
g2.link(lambda g: t.append("g2-link"))
def cb1(g):
    t.append("cb1-kill")
    g2.kill()
    t.append("cb1-after-kill")
g1.link(cb1)
g1.link(lambda g: t.append("cb2"))
gevent.joinall([g1, g2])
t.append("main")
gevent.sleep(0)
t.append("main-sleep0")
print(t)
