# Nested timeouts: the inner (shorter) one is caught by its own with_timeout,
# the body goes on, and the outer one fires later at the next block.
import gevent
t = []
def inner():
    try:
        gevent.sleep(1)
    finally:
        t.append("inner-finally")
def body():
    r = gevent.with_timeout(0.01, inner, timeout_value="inner-timeout")
    t.append(r)
    try:
        gevent.sleep(1)
        t.append("not-reached")
    finally:
        t.append("outer-body-finally")
try:
    gevent.with_timeout(0.05, body)
except gevent.Timeout:
    t.append("outer-timeout")
print(t)
