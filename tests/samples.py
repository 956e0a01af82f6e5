"""Small valid inputs the tests build on: measurement rows and the microbenchmark figures of the measured
H100 (copied from shared/measurements/h100-sxm, so the tests run from a clone without shared/)."""

CSV_HEADER = (
    "hidden_size,num_hidden_layers,num_attention_heads,num_key_value_heads,head_dim,intermediate_size,"
    "dtype_bytes,users,context,step_ms,step_joules,joules_per_token"
)
CSV_ROWS = [  # rows 1, 2 and 6 of decode_dense_4096x32.csv (the Llama-3.1-8B shape, 32 layers)
    "4096,32,32,8,128,14336,2,1,512,5.6057,2.5088,2.50877",
    "4096,32,32,8,128,14336,2,1,2048,6.145,2.6424,2.64244",
    "4096,32,32,8,128,14336,2,8,2048,6.2203,3.1646,0.39557",
]
MICROBENCH = {  # device_microbench.json
    "idle_power_w": 73.0,
    "hbm_read_tb_per_s": 3.02,
    "hbm_read_whole_gpu_pj_per_bit": 21.91,
    "bf16_dense_matmul_tflops": 637.9,
    "bf16_matmul_whole_gpu_pj_per_flop": 1.064,
}
