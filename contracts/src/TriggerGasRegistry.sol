// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title TriggerGasRegistry
/// @notice Prepaid balances that pay for task execution, and the escrow of each executed
///         task's fee. Anyone may deposit for any account; only the account withdraws its
///         balance. A task's fee leaves its owner's balance when the task executes and waits
///         in escrow until the AttestationCenter decides: approved, it goes to the performer;
///         rejected, back to the owner. Balances are credited inside the contract, never
///         pushed, and nothing here is callable by a job: the hub calls targets through the
///         owner's forwarder, and the functions that move money are internal.
/// @dev One storage word per executed task (the exactly-once marker and the escrow at
///      once): a 160-bit commitment to (job, attempt, performer), the fee, and whether the
///      escrow was settled.
abstract contract TriggerGasRegistry {
    struct Escrow {
        bytes20 commitment;
        uint88 fee;
        bool settled;
    }

    mapping(address => uint256) public balanceOf;
    mapping(uint256 => Escrow) private _escrows;

    event Deposited(address indexed account, address indexed from, uint256 amount, uint256 balance);
    event Withdrawn(address indexed account, address indexed to, uint256 amount, uint256 balance);
    event FeeReleased(uint256 indexed taskId, address indexed to, uint256 amount, bool approved);

    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    error ZeroAmount();
    error TransferFailed(address to, uint256 amount);
    error FeeTooLarge(uint256 fee);
    error NotExecuted(uint256 taskId);
    error AlreadySettled(uint256 taskId);
    error ExecutionMismatch(uint256 taskId);

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

    /// @notice Whether task `taskId` was executed, the fee in escrow, and whether it was settled.
    function escrowOf(uint256 taskId) external view returns (bool executed, uint256 fee, bool settled) {
        Escrow memory e = _escrows[taskId];
        return (e.commitment != bytes20(0), e.fee, e.settled);
    }

    /// @dev Whether task `taskId` has already executed.
    function _executed(uint256 taskId) internal view returns (bool) {
        return _escrows[taskId].commitment != bytes20(0);
    }

    /// @dev Move `fee` from `owner`'s balance into the escrow of task `taskId`, marking it executed.
    function _escrow(address owner, uint256 taskId, uint256 jobId, uint32 attempt, address performer, uint256 fee)
        internal
    {
        if (fee > type(uint88).max) revert FeeTooLarge(fee);
        uint256 balance = balanceOf[owner];
        if (balance < fee) revert InsufficientBalance(owner, balance, fee);
        balanceOf[owner] = balance - fee;
        _escrows[taskId] = Escrow(_commitment(jobId, attempt, performer), uint88(fee), false);
    }

    /// @dev Release task `taskId`'s escrow: to `performer` if `approve`, else back to the job's
    ///      owner. An approval must name the execution exactly (job, attempt, performer); a
    ///      rejection of something that was never executed moves nothing and returns false.
    function _release(uint256 taskId, uint256 jobId, uint32 attempt, address performer, address owner, bool approve)
        internal
        returns (bool released)
    {
        Escrow storage e = _escrows[taskId];
        bool matches = e.commitment != bytes20(0) && e.commitment == _commitment(jobId, attempt, performer);
        if (!matches) {
            if (!approve) return false;
            if (e.commitment == bytes20(0)) revert NotExecuted(taskId);
            revert ExecutionMismatch(taskId);
        }
        if (e.settled) revert AlreadySettled(taskId);
        e.settled = true;
        address to = approve ? performer : owner;
        balanceOf[to] += e.fee;
        emit FeeReleased(taskId, to, e.fee, approve);
        return true;
    }

    function _commitment(uint256 jobId, uint32 attempt, address performer) private pure returns (bytes20) {
        return bytes20(keccak256(abi.encode(jobId, attempt, performer)));
    }

    function _credit(address account) private {
        if (msg.value == 0) revert ZeroAmount();
        uint256 balance = balanceOf[account] + msg.value;
        balanceOf[account] = balance;
        emit Deposited(account, msg.sender, msg.value, balance);
    }
}
