# The signal arrives while main waits on the thread pool: the handler runs
# before main's result comes back.
import gevent, os, signal, time
t = []
tp = gevent.get_hub().threadpool
h = gevent.signal_handler(signal.SIGUSR1, lambda: t.append("h"))
def job():
    os.kill(os.getpid(), signal.SIGUSR1)
    time.sleep(0.05)
    return "r"
t.append("main-" + tp.apply(job))
gevent.sleep(0.01)
t.append("main")
h.cancel()
print(t)
