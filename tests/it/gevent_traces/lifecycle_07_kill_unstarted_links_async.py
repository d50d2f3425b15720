# Killing an unstarted greenlet: it never runs; kill returns at once and
# its links run later, when main blocks.
import gevent
t = []
def body():
    t.append("body")
g = gevent.spawn(body)
x = gevent.spawn(lambda: t.append("x"))
g.link(lambda g: t.append("link"))
g.kill()
t.append("main-killed:dead=%s" % g.dead)
gevent.sleep(0)
t.append("main-sleep0")
print(t)
