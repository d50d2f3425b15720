# A greenlet kills itself while another greenlet is ready: gevent delivers
# the kill through the loop, so the ready one runs first.
import gevent
t = []
def body():
    try:
        t.append("g-before")
        gevent.getcurrent().kill()
        t.append("g-after-kill")
    finally:
        t.append("g-finally")
g = gevent.spawn(body)
x = gevent.spawn(lambda: t.append("x"))
g.join()
t.append("main:" + type(g.exception).__name__ + ":" + str(g.successful()))
print(t)
