// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title TriggerGasRegistry
/// @notice Prepaid balances that pay for task execution, and the escrow of each executed
///         task's fee. Anyone may deposit for any account; only the account withdraws its
///         balance. A task's fee leaves its owner's balance when the task executes and waits
///         in escrow until the AttestationCenter decides: approved, it goes to the performer;
///         rejected, back to the owner. An escrow nobody decided within ESCROW_TIMEOUT can be
///         refunded to the owner by anyone. Balances are credited inside the contract, never
///         pushed, and nothing here is callable by a job: the hub calls targets through the
///         owner's forwarder, and the functions that move money are internal.
/// @dev Gas: an execution writes one storage word besides the owner's balance. Task `t` owns
///      word `t % EXECUTION_RING` of a ring shared by all tasks, which records the newest task
///      that executed in it: its id, a commitment to (job, attempt, performer), the escrowed
///      fee, the execution time and whether the escrow was settled. Exactly once: a task
///      executes only while its word is empty or records an older task, and once recorded, the
///      word's task id never goes below it again. The one exception is a task whose execution
///      the attesters rejected with the stake that also penalises (`reopen`): a later attempt
///      of it may execute, so that a lying performer costs the task a retry, not its run. A task whose word records a later task is
///      refused (that one is at least EXECUTION_RING ids newer: the gateway retries nothing
///      that old). An older task's escrow still undecided when a newer one takes the word moves
///      aside (`_evicted`, a fresh word the newer execution pays for), so an escrow nobody
///      decides blocks nobody. Task ids are below 2^64, a fee below 2^72 wei (about 4,700 ETH).
///      The first EXECUTION_RING tasks of a deployment write fresh words (20,000 gas more each).
abstract contract TriggerGasRegistry {
    uint256 public constant EXECUTION_RING = 4096;
    uint256 public constant ESCROW_TIMEOUT = 1 days;

    /// @notice Where task `taskId` stands: it may still execute (Open), its execution is
    ///         recorded (Executed), or a newer task took its word and it can no longer execute
    ///         (Closed; whether it did is in the TaskExecuted logs).
    enum TaskState {
        Open,
        Executed,
        Closed
    }

    /// @dev One ring word. A recorded execution's commitment is never zero (its low bit is set).
    struct Execution {
        uint64 taskId;
        bytes9 commitment;
        uint72 fee;
        uint40 executedAt;
        bool settled;
    }

    mapping(address => uint256) public balanceOf;
    /// @dev The ring: word `taskId % EXECUTION_RING`.
    mapping(uint256 => Execution) private _executions;
    /// @dev taskId → its undecided execution, moved out of the ring by a newer task.
    mapping(uint256 => Execution) private _evicted;

    event Deposited(address indexed account, address indexed from, uint256 amount, uint256 balance);
    event Withdrawn(address indexed account, address indexed to, uint256 amount, uint256 balance);
    event FeeReleased(uint256 indexed taskId, address indexed to, uint256 amount, bool approved);
    /// @notice Attempt `attempt` of task `taskId` was rejected as wrong: a later attempt may execute.
    event TaskReopened(uint256 indexed taskId, uint32 attempt);

    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    error ZeroAmount();
    error TransferFailed(address to, uint256 amount);
    error FeeTooLarge(uint256 fee);
    error TaskIdTooLarge(uint256 taskId);
    error AlreadyExecuted(uint256 taskId);
    error TaskSuperseded(uint256 taskId);
    error NotExecuted(uint256 taskId);
    error AlreadySettled(uint256 taskId);
    error ExecutionMismatch(uint256 taskId);
    error EscrowNotExpired(uint256 taskId, uint256 refundableAt);

    function deposit() external payable {
        _credit(msg.sender);
    }

    function depositFor(address account) external payable {
        _credit(account);
    }

    function withdraw(uint256 amount, address payable to) external {
        if (amount == 0) revert ZeroAmount();
        uint256 balance = balanceOf[msg.sender];
        if (balance < amount) revert InsufficientBalance(msg.sender, balance, amount);
        balanceOf[msg.sender] = balance - amount;
        emit Withdrawn(msg.sender, to, amount, balance - amount);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }

    /// @notice Where task `taskId` stands (see TaskState).
    function taskState(uint256 taskId) external view returns (TaskState state) {
        if (taskId > type(uint64).max) return TaskState.Closed; // an id the hub never executes
        (, state) = _record(taskId);
    }

    /// @notice The escrow of attempt `attempt` of task `taskId` of job `jobId` by `performer`:
    ///         whether its execution is recorded, its fee, and whether it was settled.
    function escrowOf(uint256 taskId, uint256 jobId, uint32 attempt, address performer)
        external
        view
        returns (bool held, uint256 fee, bool settled)
    {
        (Execution storage e, TaskState state) = _record(taskId);
        if (state != TaskState.Executed || e.commitment != _commitment(taskId, jobId, attempt, performer)) {
            return (false, 0, false);
        }
        return (true, e.fee, e.settled);
    }

    /// @notice Refund to its owner the fee of an execution nobody decided within ESCROW_TIMEOUT
    ///         (anyone may call: the money can only go back to the job's owner).
    function refundExpired(uint256 taskId, uint256 jobId, uint32 attempt, address performer) external {
        Execution storage e = _heldEscrow(taskId, jobId, attempt, performer);
        uint256 refundableAt = uint256(e.executedAt) + ESCROW_TIMEOUT;
        if (block.timestamp < refundableAt) revert EscrowNotExpired(taskId, refundableAt);
        _settle(e, taskId, _ownerOfJob(jobId), false);
    }

    /// @dev The owner encoded in a job id (see JobRegistry).
    function _ownerOfJob(uint256 jobId) internal pure virtual returns (address);

    /// @dev Record task `taskId`'s execution (once) and move `fee` from `owner`'s balance into
    ///      its escrow.
    function _escrow(address owner, uint256 taskId, uint256 jobId, uint32 attempt, address performer, uint256 fee)
        internal
    {
        if (taskId > type(uint64).max) revert TaskIdTooLarge(taskId);
        if (fee > type(uint72).max) revert FeeTooLarge(fee);
        uint256 slot = taskId % EXECUTION_RING;
        Execution memory previous = _executions[slot];
        if (previous.taskId > taskId) revert TaskSuperseded(taskId);
        if (previous.taskId == taskId) {
            // Once, unless a proven rejection reopened the task for its later attempts.
            if (previous.commitment != bytes9(0) || attempt <= previous.fee) revert AlreadyExecuted(taskId);
        } else if (previous.commitment != bytes9(0) && !previous.settled) {
            _evicted[previous.taskId] = previous;
        }
        uint256 balance = balanceOf[owner];
        if (balance < fee) revert InsufficientBalance(owner, balance, fee);
        balanceOf[owner] = balance - fee;
        _executions[slot] = Execution(
            uint64(taskId), _commitment(taskId, jobId, attempt, performer), uint72(fee), uint40(block.timestamp), false
        );
    }

    /// @dev Release task `taskId`'s escrow: to `performer` if `approve`, else back to the job's
    ///      owner. The decision must name the execution exactly (job, attempt, performer).
    ///      `reopen` (a rejection that proved the execution wrong) lets the task execute again,
    ///      in a later attempt only: its record then keeps no commitment and, in `fee`, the
    ///      rejected attempt. A reopened record still holds its word's task id, so no older
    ///      task takes the word.
    function _release(uint256 taskId, uint256 jobId, uint32 attempt, address performer, bool approve, bool reopen)
        internal
    {
        Execution storage e = _heldEscrow(taskId, jobId, attempt, performer);
        _settle(e, taskId, approve ? performer : _ownerOfJob(jobId), approve);
        if (reopen && !approve) {
            e.commitment = bytes9(0);
            e.fee = attempt;
            emit TaskReopened(taskId, attempt);
        }
    }

    /// @dev The recorded execution of exactly (task, job, attempt, performer), or a revert
    ///      saying whether the task never executed, executed otherwise, or was superseded.
    function _heldEscrow(uint256 taskId, uint256 jobId, uint32 attempt, address performer)
        private
        view
        returns (Execution storage e)
    {
        TaskState state;
        (e, state) = _record(taskId);
        if (state == TaskState.Open) revert NotExecuted(taskId);
        if (state == TaskState.Closed) revert TaskSuperseded(taskId);
        if (e.commitment != _commitment(taskId, jobId, attempt, performer)) revert ExecutionMismatch(taskId);
    }

    /// @dev Task `taskId`'s execution record (in the ring, or moved aside undecided) and its state.
    function _record(uint256 taskId) private view returns (Execution storage e, TaskState state) {
        e = _executions[taskId % EXECUTION_RING];
        if (e.taskId < taskId || (e.taskId == taskId && e.commitment == bytes9(0))) return (e, TaskState.Open);
        if (e.taskId == taskId) return (e, TaskState.Executed);
        e = _evicted[taskId];
        return (e, e.commitment == bytes9(0) ? TaskState.Closed : TaskState.Executed);
    }

    function _settle(Execution storage e, uint256 taskId, address to, bool approved) private {
        if (e.settled) revert AlreadySettled(taskId);
        e.settled = true;
        balanceOf[to] += e.fee;
        emit FeeReleased(taskId, to, e.fee, approved);
    }

    function _commitment(uint256 taskId, uint256 jobId, uint32 attempt, address performer)
        private
        pure
        returns (bytes9)
    {
        return bytes9(keccak256(abi.encode(taskId, jobId, attempt, performer))) | bytes9(uint72(1));
    }

    function _credit(address account) private {
        if (msg.value == 0) revert ZeroAmount();
        uint256 balance = balanceOf[account] + msg.value;
        balanceOf[account] = balance;
        emit Deposited(account, msg.sender, msg.value, balance);
    }
}
