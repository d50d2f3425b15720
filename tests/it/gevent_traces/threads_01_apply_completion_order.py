# Three greenlets wait on the hub's thread pool (jobs of 90, 30 and 60 ms);
# a ready greenlet runs first, results come back in completion order.
import gevent, time
t = []
tp = gevent.get_hub().threadpool
def w(n, d):
    t.append(n + "-call")
    r = tp.apply(lambda: (time.sleep(d), n)[1])
    t.append(r + "-done")
a = gevent.spawn(w, "a", 0.09)
b = gevent.spawn(w, "b", 0.03)
c = gevent.spawn(w, "c", 0.06)
x = gevent.spawn(t.append, "x")
gevent.joinall([a, b, c, x])
t.append("main")
print(t)
