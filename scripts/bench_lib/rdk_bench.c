/* A native librdkafka load generator for scripts/bench (our own code).
 *
 * The Python clients are slower than either broker on a 2-core machine, so
 * with them the benchmark measures the client. This program drives the same
 * librdkafka (the one bundled in the confluent-kafka wheel) from C.
 *
 *   rdk_bench produce BOOTSTRAP TOPIC COUNT SIZE ACKS [LINGER_MS]
 *   rdk_bench produce_keyed BOOTSTRAP TOPIC COUNT SIZE ACKS [LINGER_MS]
 *     (key = the message's sequence number in decimal, partition chosen by
 *      librdkafka's default partitioner: spreads over every partition)
 *   rdk_bench consume BOOTSTRAP TOPIC COUNT
 *   rdk_bench latency BOOTSTRAP TOPIC RATE SECONDS WARMUP_S [LINGER_MS]
 *
 * Each prints one JSON object on stdout. Loops are bounded by counts and a
 * 120 s deadline; only the given (loopback) bootstrap address is contacted.
 */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "config %s=%s: %s\n", k, v, err);
        exit(2);
    }
}

static long delivered, failed;
static char first_error[256];

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk; (void)opaque;
    if (m->err) {
        if (!failed) snprintf(first_error, sizeof first_error, "%s", rd_kafka_err2str(m->err));
        failed++;
    } else {
        delivered++;
    }
}

static rd_kafka_t *producer(const char *bootstrap, const char *acks, const char *linger) {
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    set(c, "bootstrap.servers", bootstrap);
    set(c, "acks", acks);
    if (linger) set(c, "linger.ms", linger);
    set(c, "queue.buffering.max.messages", "1000000");
    rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk) { fprintf(stderr, "producer: %s\n", err); exit(2); }
    return rk;
}

static rd_kafka_t *consumer(const char *bootstrap) {
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    set(c, "bootstrap.servers", bootstrap);
    set(c, "enable.auto.commit", "false");
    set(c, "enable.partition.eof", "false");
    char gid[64];
    snprintf(gid, sizeof gid, "rdk-bench-%ld", (long)now_ns());
    set(c, "group.id", gid); /* assign() only: no group join happens */
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    if (!rk) { fprintf(stderr, "consumer: %s\n", err); exit(2); }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static void assign_from_start(rd_kafka_t *rk, const char *topic) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

static int do_produce(const char *bootstrap, const char *topic, long count, int size,
                      const char *acks, const char *linger, int keyed) {
    rd_kafka_t *rk = producer(bootstrap, acks, linger);
    char *value = malloc(size);
    for (int i = 0; i < size; i++) value[i] = (char)(i * 31 + 7);
    /* warm-up: connection and metadata, not timed */
    rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE("warm", 4), RD_KAFKA_V_END);
    rd_kafka_flush(rk, 10000);
    delivered = failed = 0;
    int64_t t0 = now_ns(), deadline = t0 + 120LL * 1000000000LL;
    long sent = 0;
    char key[24];
    while (sent < count && now_ns() < deadline) {
        rd_kafka_resp_err_t e;
        if (keyed) {
            int kl = snprintf(key, sizeof key, "%ld", sent);
            e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, (size_t)kl),
                                  RD_KAFKA_V_VALUE(value, size),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        } else {
            e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                  RD_KAFKA_V_VALUE(value, size),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        }
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) { rd_kafka_poll(rk, 1); continue; }
        if (e) { fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e)); break; }
        sent++;
        if ((sent & 1023) == 0) rd_kafka_poll(rk, 0);
    }
    int64_t left_ms = (deadline - now_ns()) / 1000000;
    rd_kafka_flush(rk, left_ms > 0 ? (int)left_ms : 0);
    double el = (now_ns() - t0) / 1e9;
    printf("{\"sent\": %ld, \"delivered\": %ld, \"errors\": %ld, \"first_error\": \"%s\", "
           "\"elapsed_s\": %.6f, \"msg_per_s\": %.1f, \"mb_per_s\": %.3f}\n",
           sent, delivered, failed, first_error, el, delivered / el, delivered * (double)size / el / 1e6);
    rd_kafka_destroy(rk);
    free(value);
    return failed != 0;
}

static int do_consume(const char *bootstrap, const char *topic, long count) {
    rd_kafka_t *rk = consumer(bootstrap);
    assign_from_start(rk, topic);
    long got = 0, bytes = 0;
    int64_t t_first = 0, t_last = 0, deadline = now_ns() + 120LL * 1000000000LL;
    while (got < count && now_ns() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        if (!m->err) {
            if (!got) t_first = now_ns();
            got++;
            bytes += m->len;
            t_last = now_ns();
        }
        rd_kafka_message_destroy(m);
    }
    double el = (t_last - t_first) / 1e9;
    if (el <= 0) el = 1e-9;
    printf("{\"received\": %ld, \"elapsed_s\": %.6f, \"msg_per_s\": %.1f, \"mb_per_s\": %.3f}\n",
           got, el, got / el, bytes / el / 1e6);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return got < count;
}

struct lat { const char *bootstrap, *topic; long total, warm; int64_t *lat; long n; volatile int stop; };

static void *lat_consumer(void *arg) {
    struct lat *L = arg;
    rd_kafka_t *rk = consumer(L->bootstrap);
    assign_from_start(rk, L->topic);
    int64_t deadline = now_ns() + 180LL * 1000000000LL;
    while (!L->stop && now_ns() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        int64_t t = now_ns();
        if (!m->err && m->len >= 16) {
            int64_t seq, sent;
            memcpy(&seq, m->payload, 8);
            memcpy(&sent, (char *)m->payload + 8, 8);
            if (seq >= L->warm) L->lat[L->n++] = t - sent;
            if (seq == L->total - 1) L->stop = 1;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return NULL;
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct(int64_t *v, long n, double p) {
    if (!n) return -1;
    long i = (long)(p / 100.0 * n + 0.999999) - 1;
    if (i < 0) i = 0;
    if (i >= n) i = n - 1;
    return v[i] / 1e6;
}

static int do_latency(const char *bootstrap, const char *topic, int rate, double seconds, double warmup,
                      const char *linger) {
    struct lat L = {bootstrap, topic, 0, 0, NULL, 0, 0};
    L.warm = (long)(rate * warmup);
    L.total = L.warm + (long)(rate * seconds);
    L.lat = calloc(L.total + 1, sizeof(int64_t));
    pthread_t th;
    pthread_create(&th, NULL, lat_consumer, &L);
    rd_kafka_t *rk = producer(bootstrap, "all", linger);
    struct timespec pause = {0, 200000000};
    nanosleep(&pause, NULL); /* let the consumer assign */
    char buf[100];
    memset(buf, 0, sizeof buf);
    int64_t start = now_ns();
    for (long i = 0; i < L.total; i++) {
        int64_t target = start + (int64_t)(i * 1e9 / rate);
        int64_t d = target - now_ns();
        if (d > 0) {
            struct timespec ts = {d / 1000000000LL, d % 1000000000LL};
            nanosleep(&ts, NULL);
        }
        int64_t t = now_ns();
        memcpy(buf, &i, 8);
        memcpy(buf + 8, &t, 8);
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_VALUE(buf, sizeof buf),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 10000);
    int64_t wait_until = now_ns() + 5LL * 1000000000LL;
    while (!L.stop && now_ns() < wait_until) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    L.stop = 1;
    pthread_join(th, NULL);
    qsort(L.lat, L.n, sizeof(int64_t), cmp64);
    /* latency histogram: counts below each upper bound (ms), the last is the rest */
    static const double bounds_ms[] = {0.25, 0.5, 1, 2, 5, 10, 20, 50, 100};
    enum { NB = sizeof bounds_ms / sizeof bounds_ms[0] };
    long hist[NB + 1] = {0};
    for (long k = 0, b = 0; k < L.n; k++) {
        while (b < NB && L.lat[k] / 1e6 >= bounds_ms[b]) b++; /* sorted: b only grows */
        hist[b]++;
    }
    printf("{\"expected\": %ld, \"received\": %ld, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, "
           "\"max_ms\": %.3f, \"histogram_ms\": {",
           L.total - L.warm, L.n, pct(L.lat, L.n, 50), pct(L.lat, L.n, 99), pct(L.lat, L.n, 99.9),
           L.n ? L.lat[L.n - 1] / 1e6 : -1.0);
    for (int k = 0; k < NB; k++) printf("\"<%g\": %ld, ", bounds_ms[k], hist[k]);
    printf("\">=%g\": %ld}}\n", bounds_ms[NB - 1], hist[NB]);
    rd_kafka_destroy(rk);
    free(L.lat);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 7 && !strcmp(argv[1], "produce"))
        return do_produce(argv[2], argv[3], atol(argv[4]), atoi(argv[5]), argv[6], argc > 7 ? argv[7] : NULL, 0);
    if (argc >= 7 && !strcmp(argv[1], "produce_keyed"))
        return do_produce(argv[2], argv[3], atol(argv[4]), atoi(argv[5]), argv[6], argc > 7 ? argv[7] : NULL, 1);
    if (argc >= 5 && !strcmp(argv[1], "consume"))
        return do_consume(argv[2], argv[3], atol(argv[4]));
    if (argc >= 7 && !strcmp(argv[1], "latency"))
        return do_latency(argv[2], argv[3], atoi(argv[4]), atof(argv[5]), atof(argv[6]), argc > 7 ? argv[7] : NULL);
    fprintf(stderr, "usage: see the comment at the top of rdk_bench.c\n");
    return 2;
}
