"""Mutation testing (`make mutate`): mutmut under the test harness's services.

`__main__` starts the services and runs mutmut; `plugin` is loaded into every pytest session mutmut
starts; `startup/sitecustomize.py` runs in the processes the tests start (the Celery worker above all).
"""
