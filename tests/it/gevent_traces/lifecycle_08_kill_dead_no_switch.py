# Killing a dead greenlet neither switches nor fires its links again.
import gevent
t = []
g = gevent.spawn(lambda: t.append("g") or 7)
g.link(lambda g: t.append("link"))
g.join()
t.append("main-joined")
x = gevent.spawn(lambda: t.append("x"))
g.kill()
t.append("main-killed:%s" % g.value)
gevent.sleep(0)
t.append("main-sleep0")
print(t)
