//  sandbox_output: capped capture, UTF-8 repair, hostile /output trees.
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "actors/executor/sandbox_output.h"

Test (sandbox_output, capture_caps_and_flags)
{
    tako_sandbox_capture_t capture = { .cap = 10 };
    cr_assert_eq (tako_sandbox_capture_append (&capture, "hello ", 6), 0);
    cr_assert_eq (tako_sandbox_capture_append (&capture, "world!", 6), 0);
    cr_assert_eq (capture.size, 10);
    cr_assert_str_eq (capture.data, "hello worl");
    cr_assert (capture.truncated);
    tako_sandbox_capture_release (&capture);
}

Test (sandbox_output, utf8_bad_sequences_become_replacement)
{
    size_t size = 0;
    char *clean = tako_sandbox_utf8_sanitize ("a\xff" "b\xc3\xa9" "\xe2\x82", 7, &size);
    cr_assert_str_eq (clean, "a\xef\xbf\xbd" "b\xc3\xa9" "\xef\xbf\xbd\xef\xbf\xbd");
    free (clean);
    clean = tako_sandbox_utf8_sanitize ("\xed\xa0\x80", 3, &size);     //  a surrogate
    cr_assert_eq (size, 9);
    free (clean);
}

Test (sandbox_output, collects_regular_files_only)
{
    char dir [] = "/tmp/tako-output-test-XXXXXX";
    cr_assert (mkdtemp (dir));
    int fd = open (dir, O_RDONLY | O_DIRECTORY);
    int file = openat (fd, "result.json", O_WRONLY | O_CREAT, 0644);
    cr_assert_eq (write (file, "{\"a\": 1}", 8), 8);
    close (file);
    file = openat (fd, "small.txt", O_WRONLY | O_CREAT, 0644);
    cr_assert_eq (write (file, "abc", 3), 3);
    close (file);
    file = openat (fd, "sparse.bin", O_WRONLY | O_CREAT, 0644);
    cr_assert_eq (ftruncate (file, 1LL << 40), 0);           //  a sparse terabyte
    close (file);
    cr_assert_eq (symlinkat ("/etc/passwd", fd, "link"), 0);
    cr_assert_eq (mkfifoat (fd, "fifo", 0644), 0);
    tako_sandbox_output_limits_t limits = { 1024, 4096 };
    tako_sandbox_output_t out;
    cr_assert_eq (tako_sandbox_output_collect (fd, &limits, &out), 0);
    cr_assert (out.result_present);
    cr_assert_str_eq (out.result, "{\"a\": 1}");
    cr_assert_eq (out.artifact_count, 1);
    cr_assert_str_eq (out.artifacts [0].name, "small.txt");
    cr_assert_str_eq (out.artifacts [0].sha256,
                      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cr_assert_str_eq (out.artifacts [0].content_type, "text/plain");
    cr_assert_eq (out.skipped, 3);
    tako_sandbox_output_release (&out);
    const char *names [] = { "result.json", "small.txt", "sparse.bin", "link", "fifo" };
    for (size_t i = 0; i < 5; i++)
        unlinkat (fd, names [i], 0);
    close (fd);
    rmdir (dir);
}

Test (sandbox_output, content_types)
{
    cr_assert_str_eq (tako_sandbox_content_type ("a.PNG"), "image/png");
    cr_assert_str_eq (tako_sandbox_content_type ("noext"), "application/octet-stream");
    cr_assert_str_eq (tako_sandbox_content_type (".hidden"), "application/octet-stream");
}
