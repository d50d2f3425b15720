# A job that itself calls the pool's apply runs the inner call inline, on
# its own thread, as the pool's docs say.
import gevent, threading
t = []
tp = gevent.get_hub().threadpool
def inner():
    return threading.get_ident()
def outer():
    me = threading.get_ident()
    other = tp.apply(inner)
    return "inline" if other == me else "queued"
t.append(tp.apply(outer))
t.append("main-thread-differs=%s" % (tp.apply(threading.get_ident) != threading.get_ident()))
print(t)
