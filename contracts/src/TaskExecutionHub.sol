// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ECDSA} from "./ECDSA.sol";
import {Governed} from "./Governed.sol";
import {TriggerGasRegistry} from "./TriggerGasRegistry.sol";

/// @title TaskExecutionHub
/// @notice Executes a task's target call for the keeper the dispatcher assigned,
///         at most once per task id, whatever the attempt. The dispatcher signs
///         an EIP-712 `Assignment`; the hub checks that signature, that the
///         sender is the assigned performer, the deadline, the target and
///         selector, and the fee cap; it then charges the job owner's balance
///         and calls the target. A reverting target is recorded as a failed
///         execution; it does not revert this call, so the task stays executed
///         and paid for (the keeper did its work).
contract TaskExecutionHub is Governed {
    struct Assignment {
        uint256 taskId;
        uint256 jobId;
        uint32 attempt;
        address performer;
        address owner;
        address target;
        bytes4 selector;
        uint64 gasLimit;
        uint64 deadline;
        uint256 maxFee;
        bytes32 triggerEvidence;
    }

    bytes32 public constant ASSIGNMENT_TYPEHASH = keccak256(
        "Assignment(uint256 taskId,uint256 jobId,uint32 attempt,address performer,address owner,"
        "address target,bytes4 selector,uint64 gasLimit,uint64 deadline,uint256 maxFee,"
        "bytes32 triggerEvidence)"
    );
    bytes32 private constant _DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    string public constant NAME = "TriggerX TaskExecutionHub";
    string public constant VERSION = "1";

    /// @notice How much of a failing target's revert data is kept in the event.
    uint256 public constant MAX_REVERT_DATA = 256;
    /// @dev Gas this contract needs after the target call returns (event, bookkeeping).
    uint256 private constant _GAS_AFTER_CALL = 20_000;

    TriggerGasRegistry public immutable gasRegistry;
    address public dispatcher;
    /// @notice The performer that executed a task, or zero if the task never ran.
    mapping(uint256 => address) public executedBy;

    event TaskExecuted(
        uint256 indexed taskId,
        uint256 indexed jobId,
        address indexed performer,
        uint32 attempt,
        address target,
        bool success,
        uint256 fee,
        bytes32 returnDataHash
    );
    event TargetReverted(uint256 indexed taskId, bytes revertData);
    event DispatcherChanged(address indexed previous, address indexed current);

    error WrongPerformer(address expected, address caller);
    error AssignmentExpired(uint64 deadline, uint256 timestamp);
    error FeeAboveMax(uint256 fee, uint256 maxFee);
    error SelectorMismatch(bytes4 expected);
    error AlreadyExecuted(uint256 taskId, address performer);
    error BadDispatcherSignature(address recovered);
    error InsufficientGasForTarget(uint256 available, uint256 needed);

    constructor(address initialGovernor, TriggerGasRegistry registry, address initialDispatcher)
        Governed(initialGovernor)
    {
        gasRegistry = registry;
        dispatcher = initialDispatcher;
        emit DispatcherChanged(address(0), initialDispatcher);
    }

    function setDispatcher(address newDispatcher) external onlyGovernor {
        emit DispatcherChanged(dispatcher, newDispatcher);
        dispatcher = newDispatcher;
    }

    /// @notice Execute `callData` on `a.target` for assignment `a` signed by the dispatcher.
    /// @param fee what the performer charges the job owner, at most `a.maxFee`.
    /// @return success whether the target call succeeded.
    function execute(Assignment calldata a, bytes calldata signature, bytes calldata callData, uint256 fee)
        external
        returns (bool success)
    {
        if (msg.sender != a.performer) revert WrongPerformer(a.performer, msg.sender);
        if (block.timestamp > a.deadline) revert AssignmentExpired(a.deadline, block.timestamp);
        if (fee > a.maxFee) revert FeeAboveMax(fee, a.maxFee);
        if (callData.length < 4 || bytes4(callData[:4]) != a.selector) {
            revert SelectorMismatch(a.selector);
        }
        address previous = executedBy[a.taskId];
        if (previous != address(0)) revert AlreadyExecuted(a.taskId, previous);
        address signer = ECDSA.recover(assignmentDigest(a), signature);
        if (signer != dispatcher) revert BadDispatcherSignature(signer);

        executedBy[a.taskId] = msg.sender;
        gasRegistry.charge(a.owner, a.performer, a.taskId, fee);

        // The target must get the full gas the dispatcher granted, so that a performer
        // cannot make a task fail on purpose by sending too little gas (EIP-150 keeps 1/64).
        uint256 needed = uint256(a.gasLimit) + uint256(a.gasLimit) / 63 + _GAS_AFTER_CALL;
        if (gasleft() < needed) revert InsufficientGasForTarget(gasleft(), needed);

        bytes memory returnData;
        (success, returnData) = _callBounded(a.target, a.gasLimit, callData);
        emit TaskExecuted(
            a.taskId, a.jobId, a.performer, a.attempt, a.target, success, fee, keccak256(returnData)
        );
        if (!success) emit TargetReverted(a.taskId, returnData);
    }

    /// @notice The EIP-712 digest the dispatcher signs for `a`.
    function assignmentDigest(Assignment calldata a) public view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                ASSIGNMENT_TYPEHASH,
                a.taskId,
                a.jobId,
                a.attempt,
                a.performer,
                a.owner,
                a.target,
                a.selector,
                a.gasLimit,
                a.deadline,
                a.maxFee,
                a.triggerEvidence
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(
                _DOMAIN_TYPEHASH,
                keccak256(bytes(NAME)),
                keccak256(bytes(VERSION)),
                block.chainid,
                address(this)
            )
        );
    }

    /// @dev Call `target`, copying at most MAX_REVERT_DATA bytes of what it returns,
    ///      so a target cannot exhaust our gas by returning a huge buffer.
    function _callBounded(address target, uint64 gasLimit, bytes calldata callData)
        private
        returns (bool success, bytes memory returnData)
    {
        bytes memory data = callData;
        returnData = new bytes(MAX_REVERT_DATA);
        uint256 copied;
        assembly ("memory-safe") {
            success := call(gasLimit, target, 0, add(data, 0x20), mload(data), 0, 0)
            copied := returndatasize()
            if gt(copied, MAX_REVERT_DATA) { copied := MAX_REVERT_DATA }
            returndatacopy(add(returnData, 0x20), 0, copied)
            mstore(returnData, copied)
        }
    }
}
