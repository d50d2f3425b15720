# main and two children all yield with sleep(0): the round-robin order.
import gevent
t = []
def child(n):
    for i in range(3):
        t.append("%s%d" % (n, i))
        gevent.sleep(0)
a = gevent.spawn(child, "a")
b = gevent.spawn(child, "b")
for i in range(3):
    t.append("m%d" % i)
    gevent.sleep(0)
gevent.joinall([a, b])
t.append("main")
print(t)
