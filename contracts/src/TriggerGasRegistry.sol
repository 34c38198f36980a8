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
/// @dev Gas: a task costs two warm-ish storage words, not a fresh one. Exactly-once is one
///      bit per task id (sequential ids share words); escrows live in a ring of
///      ESCROW_RING words per performer, indexed by task id, each a 128-bit commitment to
///      (task, job, attempt), the fee, the execution time and whether it was settled. A ring
///      word is reused once its escrow is settled; a performer with an undecided escrow in
///      the word a new task needs cannot execute that task (another keeper will).
abstract contract TriggerGasRegistry {
    uint256 public constant ESCROW_RING = 64;
    uint256 public constant ESCROW_TIMEOUT = 1 days;

    struct Escrow {
        bytes16 commitment;
        uint80 fee;
        uint40 executedAt;
        bool settled;
    }

    mapping(address => uint256) public balanceOf;
    mapping(uint256 => uint256) private _executedBits;
    mapping(address => Escrow[ESCROW_RING]) private _escrows;

    event Deposited(address indexed account, address indexed from, uint256 amount, uint256 balance);
    event Withdrawn(address indexed account, address indexed to, uint256 amount, uint256 balance);
    event FeeReleased(uint256 indexed taskId, address indexed to, uint256 amount, bool approved);

    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    error ZeroAmount();
    error TransferFailed(address to, uint256 amount);
    error FeeTooLarge(uint256 fee);
    error AlreadyExecuted(uint256 taskId);
    error EscrowSlotBusy(address performer, uint256 slot);
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

    /// @notice Whether task `taskId` has executed (whatever its attempt or performer).
    function executed(uint256 taskId) public view returns (bool) {
        return _executedBits[taskId >> 8] & (uint256(1) << (taskId & 255)) != 0;
    }

    /// @notice The escrow of attempt `attempt` of task `taskId` of job `jobId` by `performer`:
    ///         whether it is held (still in the ring), its fee, and whether it was settled.
    function escrowOf(uint256 taskId, uint256 jobId, uint32 attempt, address performer)
        external
        view
        returns (bool held, uint256 fee, bool settled)
    {
        Escrow memory e = _escrows[performer][taskId % ESCROW_RING];
        if (e.commitment != _commitment(taskId, jobId, attempt)) return (false, 0, false);
        return (true, e.fee, e.settled);
    }

    /// @notice Refund to its owner the fee of an execution nobody decided within ESCROW_TIMEOUT
    ///         (anyone may call: the money can only go back to the job's owner).
    function refundExpired(uint256 taskId, uint256 jobId, uint32 attempt, address performer) external {
        Escrow storage e = _heldEscrow(taskId, jobId, attempt, performer);
        uint256 refundableAt = uint256(e.executedAt) + ESCROW_TIMEOUT;
        if (block.timestamp < refundableAt) revert EscrowNotExpired(taskId, refundableAt);
        _settle(e, taskId, _ownerOfJob(jobId), false);
    }

    /// @dev The owner encoded in a job id (see JobRegistry).
    function _ownerOfJob(uint256 jobId) internal pure virtual returns (address);

    /// @dev Mark task `taskId` executed (once) and move `fee` from `owner`'s balance into escrow.
    function _escrow(address owner, uint256 taskId, uint256 jobId, uint32 attempt, address performer, uint256 fee)
        internal
    {
        uint256 bit = uint256(1) << (taskId & 255);
        uint256 word = _executedBits[taskId >> 8];
        if (word & bit != 0) revert AlreadyExecuted(taskId);
        _executedBits[taskId >> 8] = word | bit;
        if (fee > type(uint80).max) revert FeeTooLarge(fee);
        uint256 balance = balanceOf[owner];
        if (balance < fee) revert InsufficientBalance(owner, balance, fee);
        balanceOf[owner] = balance - fee;
        Escrow storage e = _escrows[performer][taskId % ESCROW_RING];
        if (e.commitment != bytes16(0) && !e.settled) revert EscrowSlotBusy(performer, taskId % ESCROW_RING);
        _escrows[performer][taskId % ESCROW_RING] =
            Escrow(_commitment(taskId, jobId, attempt), uint80(fee), uint40(block.timestamp), false);
    }

    /// @dev Release task `taskId`'s escrow: to `performer` if `approve`, else back to the job's
    ///      owner. The decision must name the execution exactly (job, attempt, performer).
    function _release(uint256 taskId, uint256 jobId, uint32 attempt, address performer, bool approve) internal {
        Escrow storage e = _heldEscrow(taskId, jobId, attempt, performer);
        _settle(e, taskId, approve ? performer : _ownerOfJob(jobId), approve);
    }

    /// @dev The escrow of exactly this execution (task, job, attempt, performer), or a revert
    ///      saying whether the task never executed or executed otherwise.
    function _heldEscrow(uint256 taskId, uint256 jobId, uint32 attempt, address performer)
        private
        view
        returns (Escrow storage e)
    {
        e = _escrows[performer][taskId % ESCROW_RING];
        if (e.commitment != _commitment(taskId, jobId, attempt)) {
            if (!executed(taskId)) revert NotExecuted(taskId);
            revert ExecutionMismatch(taskId);
        }
    }

    function _settle(Escrow storage e, uint256 taskId, address to, bool approved) private {
        if (e.settled) revert AlreadySettled(taskId);
        e.settled = true;
        balanceOf[to] += e.fee;
        emit FeeReleased(taskId, to, e.fee, approved);
    }

    function _commitment(uint256 taskId, uint256 jobId, uint32 attempt) private pure returns (bytes16) {
        return bytes16(keccak256(abi.encode(taskId, jobId, attempt)));
    }

    function _credit(address account) private {
        if (msg.value == 0) revert ZeroAmount();
        uint256 balance = balanceOf[account] + msg.value;
        balanceOf[account] = balance;
        emit Deposited(account, msg.sender, msg.value, balance);
    }
}
