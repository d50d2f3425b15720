# main in sleep(0) rounds while a child raises between them: main goes on,
# the failure is the child's alone.
import gevent
t = []
def body():
    t.append("child-1")
    gevent.sleep(0)
    t.append("child-2")
    raise ValueError("boom")
g = gevent.spawn(body)
for i in range(3):
    gevent.sleep(0)
    t.append("main-%d:dead=%s" % (i, g.dead))
t.append("main:" + type(g.exception).__name__)
print(t)
