// raii.cpp: a C++ host. Every handle lives in a std::unique_ptr with its free function
// as deleter, failed statuses become exceptions, and the agent can be any C++ callable.
// Nothing leaks on any path, including when an exception unwinds through main.

#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "parallel_agents.h"

namespace pagent {

// A failed library call: the status and pagent_last_error() at the time.
class Error : public std::runtime_error {
public:
    Error(pagent_status status, const std::string &what)
        : std::runtime_error(what + ": " + pagent_status_str(status) + ": " + pagent_last_error()),
          status_(status) {}
    pagent_status status() const noexcept { return status_; }

private:
    pagent_status status_;
};

inline void check(pagent_status status, const char *what) {
    if (status != PAGENT_OK) {
        throw Error(status, what);
    }
}

// One owning pointer type per handle, each freed by its own free function.
template <typename T, void (*Free)(T *)>
struct Deleter {
    void operator()(T *p) const noexcept { Free(p); }
};
template <typename T, void (*Free)(T *)>
using Owned = std::unique_ptr<T, Deleter<T, Free>>;

using ConfigPtr = Owned<pagent_config, pagent_config_free>;
using AgentPtr = Owned<pagent_agent, pagent_agent_free>;
using ExecutorPtr = Owned<pagent_executor, pagent_executor_free>;
using BatchPtr = Owned<pagent_batch, pagent_batch_free>;
using ResultsPtr = Owned<pagent_results, pagent_results_free>;
using ResultPtr = Owned<pagent_result, pagent_result_free>;
using ConsensusPtr = Owned<pagent_consensus, pagent_consensus_free>;
using StringPtr = Owned<char, pagent_string_free>;

// Shuts the library down when main's scope ends (declare it first, so it goes last).
// Explicit and scoped, never a static destructor.
struct Library {
    Library() = default;
    Library(const Library &) = delete;
    Library &operator=(const Library &) = delete;
    ~Library() {
        if (pagent_shutdown(1000) != PAGENT_OK) {
            std::fprintf(stderr, "shutdown: %s\n", pagent_last_error());
        }
    }
};

class Config {
public:
    Config() : p_(pagent_config_new()) {
        if (!p_) throw std::bad_alloc();
    }
    Config &max_concurrency(size_t n) {
        check(pagent_config_set_max_concurrency(p_.get(), n), "max_concurrency");
        return *this;
    }
    Config &timeout_ms(uint64_t ms) {
        check(pagent_config_set_agent_timeout_ms(p_.get(), ms), "agent_timeout_ms");
        return *this;
    }
    Config &consensus_threshold(double t) {
        check(pagent_config_set_consensus_threshold(p_.get(), t), "consensus_threshold");
        return *this;
    }
    Config &consensus_early_stop(bool on) {
        check(pagent_config_set_consensus_early_stop(p_.get(), on), "consensus_early_stop");
        return *this;
    }
    const pagent_config *get() const { return p_.get(); }

private:
    ConfigPtr p_;
};

// A borrowed or owned result, read through the same accessors.
class ResultView {
public:
    explicit ResultView(const pagent_result *r) : r_(r) {}
    pagent_outcome outcome() const { return pagent_result_outcome(r_); }
    bool ok() const { return outcome() == PAGENT_OUTCOME_OK; }
    std::string answer() const { return ok() ? pagent_result_answer(r_) : std::string(); }
    std::string error() const { return ok() ? std::string() : pagent_result_error(r_); }
    std::string question() const { return pagent_result_question(r_); }
    size_t index() const { return pagent_result_question_index(r_); }
    size_t agent_id() const { return pagent_result_agent_id(r_); }
    double millis() const { return pagent_result_duration_us(r_) / 1000.0; }

private:
    const pagent_result *r_;
};

class Results {
public:
    explicit Results(pagent_results *r) : p_(r) {}
    size_t size() const { return pagent_results_len(p_.get()); }
    ResultView operator[](size_t i) const {
        const pagent_result *r = nullptr;
        check(pagent_results_get(p_.get(), i, &r), "results_get");
        return ResultView(r);
    }
    pagent_metrics metrics() const {
        pagent_metrics m;
        check(pagent_results_metrics(p_.get(), &m), "results_metrics");
        return m;
    }

private:
    ResultsPtr p_;
};

class Agent {
public:
    using Fn = std::function<std::string(std::string_view question, size_t agent_id)>;

    static Agent mock(const pagent_mock_options &options) {
        pagent_agent *a = nullptr;
        check(pagent_agent_mock(&options, &a), "agent_mock");
        return Agent(a);
    }

    // Any C++ callable as an agent. It runs on library threads; an exception it throws
    // becomes the call's error (it never crosses into the library). The library owns the
    // heap copy of the callable and deletes it through free_fn.
    static Agent callable(Fn fn) {
        auto owned = std::make_unique<Fn>(std::move(fn));
        pagent_agent *a = nullptr;
        check(pagent_agent_callback(&trampoline, owned.get(), &destroy, &a), "agent_callback");
        owned.release(); // ownership passed to the library on success only
        return Agent(a);
    }

    const pagent_agent *get() const { return p_.get(); }

private:
    explicit Agent(pagent_agent *a) : p_(a) {}

    static int32_t trampoline(void *user_data, const char *question, size_t agent_id,
                              pagent_reply *reply) noexcept {
        try {
            std::string answer = (*static_cast<Fn *>(user_data))(question, agent_id);
            return pagent_reply_set_answer(reply, answer.c_str()) == PAGENT_OK
                       ? PAGENT_CALLBACK_OK
                       : PAGENT_CALLBACK_ERROR;
        } catch (const std::exception &e) {
            pagent_reply_set_error(reply, e.what());
        } catch (...) {
            pagent_reply_set_error(reply, "unknown C++ exception");
        }
        return PAGENT_CALLBACK_ERROR;
    }
    static void destroy(void *user_data) noexcept { delete static_cast<Fn *>(user_data); }

    AgentPtr p_;
};

class Batch {
public:
    explicit Batch(pagent_batch *b) : p_(b) {}
    // The next finished result, or nothing once every result was taken.
    std::optional<ResultPtr> next(int64_t timeout_ms = -1) {
        pagent_result *r = nullptr;
        pagent_status st = pagent_batch_next(p_.get(), timeout_ms, &r);
        if (st == PAGENT_DONE) return std::nullopt;
        check(st, "batch_next");
        return ResultPtr(r);
    }

private:
    BatchPtr p_;
};

class Consensus {
public:
    explicit Consensus(pagent_consensus *c) : p_(c) {}
    std::string answer() const {
        const char *a = pagent_consensus_answer(p_.get());
        return a ? a : "";
    }
    double confidence() const { return pagent_consensus_confidence(p_.get()); }
    size_t votes() const { return pagent_consensus_votes(p_.get()); }
    size_t counted() const { return pagent_consensus_counted(p_.get()); }
    bool reached() const { return pagent_consensus_reached(p_.get()); }

private:
    ConsensusPtr p_;
};

class Executor {
public:
    Executor(const Config &config, const Agent &agent) {
        pagent_executor *e = nullptr;
        check(pagent_executor_new(config.get(), agent.get(), &e), "executor_new");
        p_.reset(e);
    }
    Results execute(const std::vector<std::string> &questions) const {
        auto ptrs = c_strings(questions);
        pagent_results *r = nullptr;
        check(pagent_execute(p_.get(), ptrs.data(), ptrs.size(), &r), "execute");
        return Results(r);
    }
    Batch submit(const std::vector<std::string> &questions) const {
        auto ptrs = c_strings(questions);
        pagent_batch *b = nullptr;
        check(pagent_submit(p_.get(), ptrs.data(), ptrs.size(), &b), "submit");
        return Batch(b);
    }
    Consensus consensus(const std::string &question, size_t n_agents) const {
        pagent_consensus *c = nullptr;
        check(pagent_run_consensus(p_.get(), question.c_str(), n_agents, &c), "consensus");
        return Consensus(c);
    }
    pagent_metrics metrics() const {
        pagent_metrics m;
        check(pagent_executor_metrics(p_.get(), &m), "executor_metrics");
        return m;
    }
    std::string metrics_json() const {
        StringPtr s(pagent_executor_metrics_json(p_.get()));
        if (!s) throw Error(PAGENT_ERR_INVALID_ARG, "metrics_json");
        return s.get();
    }

private:
    static std::vector<const char *> c_strings(const std::vector<std::string> &v) {
        std::vector<const char *> out;
        out.reserve(v.size());
        for (const auto &s : v) out.push_back(s.c_str());
        return out;
    }
    ExecutorPtr p_;
};

} // namespace pagent

#define EXPECT(cond)                                                                      \
    do {                                                                                  \
        if (!(cond)) throw std::logic_error(std::string("expected: ") + #cond);           \
    } while (0)

int main() {
    pagent::Library library; // shuts down last, after every handle below is freed
    try {
        // Errors are exceptions carrying the status.
        try {
            pagent::Config().max_concurrency(0);
            EXPECT(false && "max_concurrency(0) must throw");
        } catch (const pagent::Error &e) {
            EXPECT(e.status() >= 100);
            std::printf("rejected as expected: %s\n", e.what());
        }

        // A C++ lambda as the agent; it throws for one question.
        pagent::Config config;
        config.max_concurrency(4).timeout_ms(30000).consensus_threshold(0.6).consensus_early_stop(false);
        auto agent = pagent::Agent::callable([](std::string_view q, size_t id) -> std::string {
            if (q == "throw") throw std::runtime_error("the C++ agent threw");
            return "C++ agent " + std::to_string(id) + ": " + std::string(q.size(), '*');
        });
        pagent::Executor exec(config, agent);
        const std::vector<std::string> questions = {"one", "three", "throw", "seven"};
        pagent::Results results = exec.execute(questions);
        EXPECT(results.size() == questions.size());
        for (size_t i = 0; i < results.size(); i++) {
            pagent::ResultView r = results[i];
            EXPECT(r.index() == i && r.question() == questions[i]);
            if (questions[i] == "throw") {
                EXPECT(r.outcome() == PAGENT_OUTCOME_FAILED);
                EXPECT(r.error().find("the C++ agent threw") != std::string::npos);
            } else {
                EXPECT(r.ok());
                EXPECT(r.answer() == "C++ agent " + std::to_string(r.agent_id()) + ": " +
                                         std::string(questions[i].size(), '*'));
            }
            std::printf("%-6s -> %s%s\n", questions[i].c_str(), r.ok() ? "" : "FAILED: ",
                        r.ok() ? r.answer().c_str() : r.error().c_str());
        }

        // Streaming with owned results, then a consensus over a voting mock.
        pagent::Batch batch = exec.submit({"a", "bb", "ccc"});
        size_t streamed = 0;
        while (auto r = batch.next(5000)) {
            pagent::ResultView v(r->get());
            EXPECT(v.ok());
            streamed++;
        }
        EXPECT(streamed == 3);

        static const char *const votes[] = {"blue", "Blue!", "green"};
        static const double weights[] = {0.45, 0.45, 0.1};
        pagent_mock_options mock;
        pagent_mock_options_init(&mock);
        mock.latency_us = 5000;
        mock.vote_answers = votes;
        mock.vote_weights = weights;
        mock.n_vote_answers = 3;
        pagent::Executor voting(config, pagent::Agent::mock(mock));
        pagent::Consensus c = voting.consensus("What colour is the sky?", 11);
        std::printf("consensus: \"%s\" confidence %.2f votes %zu/%zu reached %s\n",
                    c.answer().c_str(), c.confidence(), c.votes(), c.counted(),
                    c.reached() ? "yes" : "no");
        EXPECT(c.counted() == 11 && 2 * c.votes() > 11 && c.reached());
        EXPECT(c.answer() == "blue" || c.answer() == "Blue!");
        EXPECT(std::fabs(c.confidence() - c.votes() / 11.0) < 1e-9);

        pagent_metrics m = exec.metrics();
        EXPECT(m.total_count == 7 && m.successful_count == 6 && m.failed_count == 1);
        std::string json = voting.metrics_json();
        EXPECT(json.find("What colour is the sky?") != std::string::npos);
        std::printf("%s\n", json.c_str());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "raii: %s\n", e.what());
        return 1;
    }
    std::printf("raii: OK\n");
    return 0;
}
