# Links added to a dead greenlet, with a spawn in between: gevent runs
# every link of the greenlet in one notifier callback, queued at the first
# link, so the second link runs before the greenlet spawned between them.
import gevent
t = []
g = gevent.spawn(lambda: 1)
g.join()
g.link(lambda g: t.append("cb1"))
x = gevent.spawn(lambda: t.append("x"))
g.link(lambda g: t.append("cb2"))
t.append("main-linked")
gevent.sleep(0)
t.append("main-sleep0")
print(t)
