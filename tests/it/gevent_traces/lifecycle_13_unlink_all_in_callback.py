# A join waiter registered first, then cb1 (which calls unlink_all and
# links cb3) and cb2: the waiter still wakes, cb2 is cut, cb3 fires.
import gevent
t = []
def body():
    t.append("g")
    gevent.sleep(0)
    t.append("g-end")
g = gevent.spawn(body)
w = gevent.spawn(lambda: (g.join(), t.append("waiter")))
gevent.sleep(0)   # g parks in sleep(0); w registers its join
def cb1(gl):
    t.append("cb1")
    gl.unlink_all()
    gl.link(lambda g: t.append("cb3"))
    t.append("cb1-end")
g.link(cb1)
g.link(lambda g: t.append("cb2"))
t.append("main-linked")
w.join()
t.append("main-joined-w")
gevent.sleep(0)
t.append("main-sleep0")
print(t)
