/*  sandbox_bootstrap — the Python program that runs first inside the sandbox.

    Passed to the interpreter with -c (and -S: without the site module it
    defines exit() and quit() as site would). It imports what it needs and the
    preload modules named by its arguments (warm pools), writes "R"
    on fd 3 (ready), blocks reading one byte from fd 4 until the job has
    been placed in /code and /input ("G"), then compiles /code/main.py and
    runs it in a fresh __main__ module, as `python3 main.py` would (not
    with runpy: run_path imports pkgutil, re, typing and enum after the
    job arrived, ~8 ms of every job). An uncaught exception is classified with the error
    table below (order matters: JSONDecodeError before ValueError, the
    OSError subclasses before OSError). json and traceback are imported
    only on that failure path (json alone costs ~10 ms of start-up); a job
    can raise JSONDecodeError only after loading json.decoder itself, so
    that row is added only then. and written as {"type", "message"}
    JSON to fd 5; the traceback, without the bootstrap frames, goes to
    stderr as Python would print it; the exit code is Python's usual.

    In an interpreter forked from a zygote (sys._tako_forked, set by
    tako-zygote) the job ends without the interpreter's finalization,
    which would touch, and so copy, every page of the zygote's heap:
    once the job's frames are gone, _tako_leave does what a job can notice
    of it — non-daemon threads joined, atexit callbacks run, __main__'s
    objects released (their __del__, and files left open are flushed),
    stdout and stderr flushed (a failed flush makes exit code 120, as in
    Python) — and hands the exit code to tako-zygote, which calls C's exit
    (C stdio flushed, C atexit handlers run). ~6 ms of a warm job's ~11 in
    bench runs. Not done: other modules the job imported are not torn
    down (objects they hold are not finalized).                          */

#include "sandbox_bootstrap.h"

const char tako_sandbox_bootstrap_source [] =
    "import os, sys\n"
    "def _tako_bootstrap():\n"
    "    READY_FD, GO_FD, ERROR_FD = 3, 4, 5\n"
    "    MESSAGE_MAX = 1024\n"

    "    import builtins, _sitebuiltins\n"
    "    if not hasattr(builtins, 'exit'):\n"
    "        builtins.exit = _sitebuiltins.Quitter('exit', 'Ctrl-D (i.e. EOF)')\n"
    "        builtins.quit = _sitebuiltins.Quitter('quit', 'Ctrl-D (i.e. EOF)')\n"
    "    for name in sys.argv[1:]:\n"
    "        __import__(name)\n"
    "    os.write(READY_FD, b'R')\n"
    "    os.close(READY_FD)\n"
    "    if os.read(GO_FD, 1) != b'G':\n"
    "        os._exit(125)\n"
    "    os.close(GO_FD)\n"
    "    def classify(error):\n"
    "        table = (\n"
    "            (SyntaxError, 'syntax_error'), (ImportError, 'import_error'),\n"
    "            (UnicodeError, 'encoding_error'),\n"
    "            ((IsADirectoryError, NotADirectoryError), 'file_error'),\n"
    "            (FileNotFoundError, 'file_not_found'), (PermissionError, 'permission'),\n"
    "            (RecursionError, 'recursion_error'), (ZeroDivisionError, 'division_error'),\n"
    "            (OverflowError, 'overflow_error'), (MemoryError, 'oom'), (OSError, 'os_error'),\n"
    "            (AssertionError, 'assertion_error'), (TypeError, 'type_error'),\n"
    "            (ValueError, 'value_error'), (KeyError, 'key_error'), (IndexError, 'index_error'),\n"
    "            (AttributeError, 'attribute_error'), (NameError, 'name_error'))\n"
    "        decoder = sys.modules.get('json.decoder')\n"
    "        if decoder is not None:\n"
    "            table = ((decoder.JSONDecodeError, 'json_error'),) + table\n"
    "        for classes, name in table:\n"
    "            if isinstance(error, classes):\n"
    "                return name\n"
    "        return 'runtime_error'\n"
    "    def report(kind, message):\n"
    "        import json\n"
    "        record = json.dumps({'type': kind, 'message': message[:MESSAGE_MAX]})\n"
    "        try:\n"
    "            os.write(ERROR_FD, record.encode('utf-8', 'replace'))\n"
    "        except OSError:\n"
    "            pass\n"
    "    sys.argv = ['/code/main.py']\n"
    "    sys.path[0] = '/code'\n"
    "    code = 0\n"
    "    try:\n"
    "        main = type(sys)('__main__')\n"
    "        main.__file__ = '/code/main.py'\n"
    "        main.__builtins__ = __builtins__\n"
    "        sys.modules['__main__'] = main\n"
    "        with open('/code/main.py', 'rb') as source:\n"
    "            compiled = compile(source.read(), '/code/main.py', 'exec', dont_inherit=True)\n"
    "        exec(compiled, main.__dict__)\n"
    "    except SystemExit as stop:\n"
    "        if stop.code is None or stop.code == 0:\n"
    "            code = 0\n"
    "        elif isinstance(stop.code, int):\n"
    "            code = stop.code\n"
    "            report('runtime_error', 'exited with code %d' % stop.code)\n"
    "        else:\n"
    "            print(stop.code, file=sys.stderr)\n"
    "            code = 1\n"
    "            report('runtime_error', str(stop.code))\n"
    "    except BaseException as error:\n"
    "        text = str(error)\n"
    "        report(classify(error), type(error).__name__ + (': ' + text if text else ''))\n"
    "        tb = error.__traceback__\n"
    "        while tb is not None and tb.tb_frame.f_code.co_filename != '/code/main.py':\n"
    "            tb = tb.tb_next\n"
    "        try:\n"
    "            import traceback\n"
    "            sys.stderr.write(''.join(traceback.format_exception(type(error), error, tb)))\n"
    "        except BaseException:\n"
    "            pass\n"
    "        code = 1\n"
    "    return code\n"
    "def _tako_leave(code):\n"
    "    threading = sys.modules.get('threading')\n"
    "    try:\n"
    "        if threading is not None:\n"
    "            threading._shutdown()\n"
    "    except BaseException:\n"
    "        pass\n"
    "    import atexit, gc\n"
    "    atexit._run_exitfuncs()\n"
    "    main = sys.modules.get('__main__')\n"
    "    if main is not None:\n"
    "        try:\n"
    "            main.__dict__.clear()\n"
    "        except BaseException:\n"
    "            pass\n"
    "    gc.collect()\n"
    "    for stream in (sys.stdout, sys.stderr):\n"
    "        try:\n"
    "            if stream is not None and not stream.closed:\n"
    "                stream.flush()\n"
    "        except BaseException:\n"
    "            code = 120\n"
    "    return code\n"
    "if sys.__dict__.pop('_tako_forked', False):\n"
    "    sys._tako_exit_code = _tako_leave(_tako_bootstrap())\n"
    "else:\n"
    "    sys.exit(_tako_bootstrap())\n";
