# join of a dead greenlet returns at once; joinall of dead greenlets in
# gevent still goes round the loop (iwait links to each).
import gevent
t = []
g = gevent.spawn(lambda: 1)
g.join()
x = gevent.spawn(lambda: t.append("x"))
g.join()
t.append("main-join-dead")
gevent.joinall([g])
t.append("main-joinall-dead")
print(t)
