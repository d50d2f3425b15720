# The first link callback blocks (sleep 0): the second starts at once, and
# a join waiter registered after both wakes before the first one finishes.
import gevent
t = []
def body():
    gevent.sleep(0)
    t.append("g")
g = gevent.spawn(body)
def cb1(g):
    t.append("cb1-start")
    gevent.sleep(0)
    t.append("cb1-end")
g.link(cb1)
g.link(lambda g: t.append("cb2"))
w = gevent.spawn(lambda: (g.join(), t.append("waiter")))
gevent.sleep(0.01)
t.append("main")
print(t)
