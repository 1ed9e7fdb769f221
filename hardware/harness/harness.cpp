// The C++ harness of the Verilated machine (hardware/machine.py): the host and the DDR model.
//
// Place in the flow: hardware/build.py compiles this file with the Verilated model into one shared
// library; hardware/backend.py calls fm_run through ctypes, once per program.  The harness loads the
// instruction memory as a host would (a row of its banks per cycle through the load port), pulses start, and
// clocks the machine until it is done, an error stops it, or max_cycles pass.  The DDR image is the
// caller's buffer (modified in place).  The DDR model answers a read request `read_latency` cycles
// after it sees it and acknowledges a write `write_latency` cycles after it (hardware/backend.py passes
// dma_latency minus the machine's address stage, so transfers complete when the simulator says).
// The port list (counters, data width) comes from the generated ports.h.
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>

#include "Vtop.h"
#include "verilated.h"
#include "ports.h"

namespace {

struct Response {
    uint64_t due;
    uint64_t tag;
    uint8_t data[FM_BEAT_BYTES];
};

template <typename T>
void put_bytes(T& sig, const uint8_t* src) {
    if constexpr (FM_BEAT_BYTES * 8 > 64) {
        for (int w = 0; w < (FM_BEAT_BYTES + 3) / 4; ++w) {
            uint32_t v = 0;
            std::memcpy(&v, src + 4 * w, 4);
            sig[w] = v;
        }
    } else {
        uint64_t v = 0;
        std::memcpy(&v, src, FM_BEAT_BYTES);
        sig = v;
    }
}

template <typename T>
void get_bytes(const T& sig, uint8_t* dst) {
    if constexpr (FM_BEAT_BYTES * 8 > 64) {
        for (int w = 0; w < (FM_BEAT_BYTES + 3) / 4; ++w) {
            uint32_t v = sig[w];
            std::memcpy(dst + 4 * w, &v, 4);
        }
    } else {
        uint64_t v = sig;
        std::memcpy(dst, &v, FM_BEAT_BYTES);
    }
}

void tick(Vtop* top) {
    top->clk = 0;
    top->eval();
    top->clk = 1;
    top->eval();
}

}  // namespace

extern "C" {

// out: FM_N_COUNTERS counters, then err, err_bundle, err_slot, err_info0, err_info1, harness status
// (0 done, 1 cycle limit, 2 DDR access outside the image).  Returns the harness status.
int fm_run(const uint64_t* prog, uint64_t n_words, uint8_t* ddr, uint64_t ddr_size, uint64_t read_latency,
           uint64_t write_latency, uint64_t max_cycles, uint64_t* out) {
    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vtop>(ctx.get());
    top->clk = 0;
    top->rst = 1;
    tick(top.get());
    top->rst = 0;
    // one row of the instruction memory's banks per cycle: word j of row r is word r * FM_IMEM_BANKS + j
    static_assert(FM_IMEM_BANKS >= 2, "load_data is a wide (VlWide) port");
    for (uint64_t row = 0; row * FM_IMEM_BANKS < n_words; ++row) {
        top->load_en = 1;
        top->load_addr = row;
        for (uint64_t j = 0; j < FM_IMEM_BANKS; ++j) {
            uint64_t i = row * FM_IMEM_BANKS + j;
            uint64_t word = i < n_words ? prog[i] : 0;
            top->load_data[2 * j] = static_cast<uint32_t>(word);
            top->load_data[2 * j + 1] = static_cast<uint32_t>(word >> 32);
        }
        tick(top.get());
    }
    top->load_en = 0;
    top->prog_words = n_words;
    top->ddr_size = ddr_size;
    top->start = 1;
    tick(top.get());
    top->start = 0;

    std::deque<Response> reads, acks;
    int status = 1;
    uint8_t beat[FM_BEAT_BYTES];
    for (uint64_t cycle = 0; cycle < max_cycles; ++cycle) {
        top->rsp_en = 0;
        top->ack_en = 0;
        if (!reads.empty() && reads.front().due == cycle) {
            top->rsp_en = 1;
            top->rsp_tag = reads.front().tag;
            put_bytes(top->rsp_data, reads.front().data);
            reads.pop_front();
        }
        if (!acks.empty() && acks.front().due == cycle) {
            top->ack_en = 1;
            top->ack_tag = acks.front().tag;
            acks.pop_front();
        }
        top->clk = 0;
        top->eval();
        if (top->done) {
            status = 0;
            break;
        }
        if (top->rd_en) {
            uint64_t addr = top->rd_addr, len = top->rd_len;
            if (addr + len > ddr_size) { status = 2; out[FM_N_COUNTERS + 3] = addr; break; }
            Response r{cycle + read_latency, top->rd_tag, {}};
            std::memcpy(r.data, ddr + addr, len);
            reads.push_back(r);
        }
        if (top->wr_en) {
            uint64_t addr = top->wr_addr, len = top->wr_len;
            if (addr + len > ddr_size) { status = 2; out[FM_N_COUNTERS + 3] = addr; break; }
            get_bytes(top->wr_data, beat);
            std::memcpy(ddr + addr, beat, len);
            acks.push_back(Response{cycle + write_latency, top->wr_tag, {}});
        }
        top->clk = 1;
        top->eval();
    }
    uint64_t* o = out;
#define FM_READ_COUNTER(name) *o++ = top->cnt_##name;
    FM_COUNTERS(FM_READ_COUNTER)
#undef FM_READ_COUNTER
    *o++ = top->err;
    *o++ = top->err_bundle;
    *o++ = top->err_slot;
    if (status != 2) {
        *o++ = top->err_info0;
        *o++ = top->err_info1;
    }
    out[FM_N_COUNTERS + 5] = status;
    top->final();
    return status;
}

}  // extern "C"
