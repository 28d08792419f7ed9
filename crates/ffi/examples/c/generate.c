/*
 * generate — generate backgrounds for a transparent product PNG with libbackdrop.
 *
 *   generate IMAGE.png "PROMPT" [OUT_PREFIX]
 *
 * Reads PICWISH_API_KEY (required), PICWISH_BASE_URL (optional, e.g. an emulator) and
 * PICWISH_QPS (optional). Writes OUT_PREFIX-1.jpg and OUT_PREFIX-2.jpg (the prefix defaults to
 * the image's name without ".png"), each through a temporary file and a rename.
 *
 * Build: cc -std=c11 generate.c $(pkg-config --cflags --libs backdrop) -o generate
 * Exit status: 0 done, 1 failed, 2 bad usage or configuration, 3 input refused locally.
 */
#define _POSIX_C_SOURCE 200809L

#include <backdrop.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints what failed, with the library's detail, and frees the detail. */
static int report(const char *what, backdrop_result code, backdrop_error *err) {
    int32_t state = 0;
    fprintf(stderr, "generate: %s failed: %s (%s)\n", what,
            err != NULL ? backdrop_error_message(err) : backdrop_result_name(code),
            backdrop_result_name(code));
    if (backdrop_error_task_id(err) != NULL) {
        fprintf(stderr, "generate: task id %s\n", backdrop_error_task_id(err));
    }
    if (backdrop_error_task_state(err, &state)) {
        fprintf(stderr, "generate: task state %d: %s\n", (int)state,
                backdrop_task_state_meaning(state));
    }
    backdrop_error_free(err);
    if (code >= 7100 && code < 7200) return 3;
    if (code == BACKDROP_ERR_CONFIG) return 2;
    return 1;
}

/* Writes through a temporary file and a rename, so `path` never holds a partial image. */
static int write_file(const char *path, const uint8_t *data, size_t len) {
    char temp[1200];
    FILE *file;
    int written;
    snprintf(temp, sizeof temp, "%s.part", path);
    file = fopen(temp, "wb");
    if (file == NULL) {
        perror(temp);
        return -1;
    }
    written = fwrite(data, 1, len, file) == len;
    if (fclose(file) != 0) written = 0;
    if (!written || rename(temp, path) != 0) {
        perror(path);
        remove(temp);
        return -1;
    }
    return 0;
}

static uint32_t show_progress(void *userdata, const backdrop_task *task) {
    (void)userdata;
    fprintf(stderr, "generate: task %s: state %d, progress %.0f%%\n", backdrop_task_id(task),
            (int)backdrop_task_state(task), backdrop_task_progress(task));
    return BACKDROP_PROGRESS_CONTINUE;
}

int main(int argc, char **argv) {
    const char *api_key = getenv("PICWISH_API_KEY");
    const char *base_url = getenv("PICWISH_BASE_URL");
    const char *qps = getenv("PICWISH_QPS");
    backdrop_client_builder *builder = NULL;
    const backdrop_client *client = NULL;
    backdrop_request *request = NULL;
    backdrop_task *task = NULL;
    backdrop_error *err = NULL;
    char prefix[1024];
    char path[1100];
    backdrop_result code;
    size_t n;
    int status = 1;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s IMAGE.png PROMPT [OUT_PREFIX]\n", argv[0]);
        return 2;
    }
    if (api_key == NULL || api_key[0] == '\0') {
        fprintf(stderr, "generate: set PICWISH_API_KEY (and PICWISH_BASE_URL for an emulator)\n");
        return 2;
    }
    if (argc == 4) {
        snprintf(prefix, sizeof prefix, "%s", argv[3]);
    } else {
        const char *slash = strrchr(argv[1], '/');
        size_t len;
        snprintf(prefix, sizeof prefix, "%s", slash != NULL ? slash + 1 : argv[1]);
        len = strlen(prefix);
        if (len > 4 && strcmp(prefix + len - 4, ".png") == 0) prefix[len - 4] = '\0';
    }

    /* The client: key, base URL, the key's QPS. */
    if (backdrop_client_builder_new(api_key, &builder) != BACKDROP_OK) return 2;
    if (base_url != NULL && base_url[0] != '\0' &&
        backdrop_client_builder_set_base_url(builder, base_url) != BACKDROP_OK) {
        backdrop_client_builder_free(builder);
        return 2;
    }
    if (qps != NULL && qps[0] != '\0' &&
        backdrop_client_builder_set_qps(builder, (uint32_t)strtoul(qps, NULL, 10)) !=
            BACKDROP_OK) {
        fprintf(stderr, "generate: PICWISH_QPS=%s is not a positive number\n", qps);
        backdrop_client_builder_free(builder);
        return 2;
    }
    code = backdrop_client_builder_build(builder, &client, &err);
    backdrop_client_builder_free(builder);
    if (code != BACKDROP_OK) return report("configuring the client", code, err);

    /* The request, checked locally before anything is sent. */
    if (backdrop_request_new(&request) != BACKDROP_OK ||
        backdrop_request_set_image_path(request, argv[1]) != BACKDROP_OK ||
        backdrop_request_set_prompt(request, argv[2]) != BACKDROP_OK) {
        fprintf(stderr, "generate: the prompt must be UTF-8\n");
        status = 2;
        goto done;
    }

    code = backdrop_client_create_task(client, request, &task, &err);
    if (code != BACKDROP_OK) {
        status = report("creating the task", code, err);
        goto done;
    }
    fprintf(stderr, "generate: task %s created\n", backdrop_task_id(task));

    code = backdrop_client_wait(client, task, 0, show_progress, NULL, &err);
    if (code != BACKDROP_OK) {
        status = report("waiting for the task", code, err);
        goto done;
    }

    /* Results are numbered from 1, as the service's data.image_1 and data.image_2. */
    for (n = 1; n <= backdrop_task_result_count(task); n++) {
        backdrop_bytes *image = NULL;
        code = backdrop_client_download(client, task, n, &image, &err);
        if (code != BACKDROP_OK) {
            status = report("downloading a result", code, err);
            goto done;
        }
        snprintf(path, sizeof path, "%s-%zu.%s", prefix, n, backdrop_bytes_extension(image));
        if (write_file(path, backdrop_bytes_data(image), backdrop_bytes_len(image)) != 0) {
            backdrop_bytes_free(image);
            goto done;
        }
        backdrop_bytes_free(image);
        printf("%s\n", path);
    }
    status = 0;

done:
    backdrop_task_free(task);
    backdrop_request_free(request);
    backdrop_client_free(client);
    return status;
}
