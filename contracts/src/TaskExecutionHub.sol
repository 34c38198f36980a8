// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ECDSA} from "./ECDSA.sol";
import {EIP712} from "./EIP712.sol";
import {Forwarder} from "./Forwarder.sol";
import {Governed} from "./Governed.sol";
import {JobRegistry} from "./JobRegistry.sol";
import {TriggerGasRegistry} from "./TriggerGasRegistry.sol";

/// @title TaskExecutionHub
/// @notice Executes a task's call for the keeper the dispatcher assigned, at most once per
///         task id, and only as its owner consented on chain (JobRegistry).
///
///         The dispatcher signs an EIP-712 `Assignment` naming the task, the job, the attempt,
///         the performer, a deadline, the job terms' hash and the trigger evidence. The hub
///         checks that signature, that the sender is the performer, the deadline, that the
///         terms are the job's current registered terms, that the call is the one they allow
///         (selector always; every byte for static arguments), that the fee is within the
///         owner's cap; then it moves the fee from the owner's balance into escrow and calls
///         the target through the owner's Forwarder with exactly the job's gas limit. A
///         reverting target is recorded as a failed execution (the keeper did its work, the
///         attesters judge it); it does not revert this call.
///
///         A job whose script decides its arguments (ARGS_DYNAMIC) may also decide not to call
///         at all (its custom logic said no): the performer sends empty call data, the fee
///         goes into escrow as for a call, and the hub records a skip instead of calling. The
///         attesters re-run the script and settle the skip like any execution.
///
///         The AttestationCenter (the `settler`) releases each escrow: to the performer when
///         the task is approved, back to the owner when it is rejected. Changing the dispatcher
///         or the settler is time-locked (Governed), so owners can withdraw first.
contract TaskExecutionHub is Governed, EIP712, JobRegistry, TriggerGasRegistry {
    struct Assignment {
        uint256 taskId;
        uint256 jobId;
        uint32 attempt;
        address performer;
        uint64 deadline;
        bytes32 termsHash;
        bytes32 triggerEvidence;
    }

    /// @notice An owner's consent to register the job with its first execution.
    struct Consent {
        uint64 expiry;
        bytes signature;
    }

    bytes32 public constant ASSIGNMENT_TYPEHASH = keccak256(
        "Assignment(uint256 taskId,uint256 jobId,uint32 attempt,address performer,uint64 deadline,"
        "bytes32 termsHash,bytes32 triggerEvidence)"
    );
    bytes32 private constant _DISPATCHER = "dispatcher";
    bytes32 private constant _SETTLER = "settler";

    /// @dev Gas the forwarder needs around the target call, and this contract after it returns.
    uint256 private constant _FORWARDER_GAS = 10_000;
    uint256 private constant _GAS_AFTER_CALL = 15_000;
    /// @dev How much of the target's return or revert data is kept (as the forwarder passes it).
    uint256 private constant _MAX_RETURN_DATA = 256;

    address public dispatcher;
    /// @notice Who decides escrows (the AttestationCenter).
    address public settler;
    bytes32 private immutable _forwarderCodeHash;

    /// @notice Task `taskId` of job `jobId` executed. The rest (attempt, performer, fee) is in
    ///         the transaction's input and sender, and in escrowOf.
    event TaskExecuted(uint256 indexed taskId, uint256 indexed jobId, bool success);
    event TargetReverted(uint256 indexed taskId, bytes revertData);
    /// @notice Task `taskId` of job `jobId` was admitted and did not call its target: the job's
    ///         script said not to (a custom-logic job's no-op).
    event TaskSkipped(uint256 indexed taskId, uint256 indexed jobId);

    error WrongPerformer(address expected, address caller);
    error AssignmentExpired(uint64 deadline, uint256 timestamp);
    error TermsMismatch(uint256 jobId);
    error FeeAboveMax(uint256 fee, uint256 maxFee);
    error CallNotAllowed(uint256 jobId);
    error BadDispatcherSignature(address recovered);
    error InsufficientGasForTarget(uint256 available, uint256 needed);
    error NotSettler(address caller);

    constructor(address initialGovernor, address initialDispatcher)
        Governed(initialGovernor)
        EIP712("TriggerX TaskExecutionHub", "2")
    {
        dispatcher = _proposeAddress(_DISPATCHER, address(0), initialDispatcher);
        _forwarderCodeHash = keccak256(type(Forwarder).creationCode);
    }

    /// @notice Propose a new dispatcher (in force after GOVERNANCE_DELAY, see applyDispatcher).
    function proposeDispatcher(address newDispatcher) external onlyGovernor {
        dispatcher = _proposeAddress(_DISPATCHER, dispatcher, newDispatcher);
    }

    function applyDispatcher() external onlyGovernor {
        dispatcher = _applyAddress(_DISPATCHER, dispatcher);
    }

    /// @notice Set the settler (at once while unset; otherwise after GOVERNANCE_DELAY, see applySettler).
    function proposeSettler(address newSettler) external onlyGovernor {
        settler = _proposeAddress(_SETTLER, settler, newSettler);
    }

    function applySettler() external onlyGovernor {
        settler = _applyAddress(_SETTLER, settler);
    }

    /// @notice Execute assignment `a` of a registered job.
    /// @param fee what the performer charges the job owner, at most `terms.maxFeePerTask`.
    /// @return success whether the target call succeeded.
    function execute(
        Assignment calldata a,
        JobTerms calldata terms,
        bytes calldata callData,
        uint256 fee,
        bytes calldata dispatcherSignature
    ) external returns (bool success) {
        return _execute(a, terms, callData, fee, dispatcherSignature);
    }

    /// @notice Register the job with its owner's consent, then execute assignment `a`.
    function executeFirst(
        Assignment calldata a,
        JobTerms calldata terms,
        bytes calldata callData,
        uint256 fee,
        bytes calldata dispatcherSignature,
        Consent calldata consent
    ) external returns (bool success) {
        // Someone may have registered the job from the (public) consent first: then it only
        // has to match, which _admit checks.
        if (jobTermsHash(a.jobId) == bytes32(0)) {
            registerJobWithConsent(a.jobId, consent.expiry, terms, consent.signature);
        }
        return _execute(a, terms, callData, fee, dispatcherSignature);
    }

    /// @notice Release task `taskId`'s escrow on the AttestationCenter's decision, reopening the
    ///         task for a later attempt after a proven rejection (see TriggerGasRegistry._release).
    function settle(uint256 taskId, uint256 jobId, uint32 attempt, address performer, bool approve, bool reopen)
        external
    {
        if (msg.sender != settler) revert NotSettler(msg.sender);
        _release(taskId, jobId, attempt, performer, approve, reopen);
    }

    function _ownerOfJob(uint256 jobId) internal pure override returns (address) {
        return ownerOf(jobId);
    }

    /// @notice The address of `owner`'s forwarder (deployed or not yet).
    function forwarderOf(address owner) public view returns (address) {
        bytes32 salt = bytes32(uint256(uint160(owner)));
        return address(uint160(uint256(keccak256(abi.encodePacked(hex"ff", address(this), salt, _forwarderCodeHash)))));
    }

    /// @notice The EIP-712 digest the dispatcher signs for `a`.
    function assignmentDigest(Assignment calldata a) public view returns (bytes32) {
        return _typedDigest(
            keccak256(
                abi.encode(
                    ASSIGNMENT_TYPEHASH,
                    a.taskId,
                    a.jobId,
                    a.attempt,
                    a.performer,
                    a.deadline,
                    a.termsHash,
                    a.triggerEvidence
                )
            )
        );
    }

    function _execute(
        Assignment calldata a,
        JobTerms calldata terms,
        bytes calldata callData,
        uint256 fee,
        bytes calldata dispatcherSignature
    ) private returns (bool success) {
        address owner = _admit(a, terms, callData, fee, dispatcherSignature);
        if (callData.length == 0) {
            emit TaskSkipped(a.taskId, a.jobId);
            return false;
        }
        bytes memory revertData;
        (success, revertData) = _forward(_forwarder(owner), terms.target, terms.gasLimit, callData);
        emit TaskExecuted(a.taskId, a.jobId, success);
        if (!success) emit TargetReverted(a.taskId, revertData);
    }

    /// @dev Every check of an execution, then the fee into escrow; returns the job's owner.
    function _admit(
        Assignment calldata a,
        JobTerms calldata terms,
        bytes calldata callData,
        uint256 fee,
        bytes calldata dispatcherSignature
    ) private returns (address owner) {
        if (msg.sender != a.performer) revert WrongPerformer(a.performer, msg.sender);
        if (block.timestamp > a.deadline) revert AssignmentExpired(a.deadline, block.timestamp);
        if (hashTerms(terms) != a.termsHash || jobTermsHash(a.jobId) != a.termsHash) revert TermsMismatch(a.jobId);
        if (fee > terms.maxFeePerTask) revert FeeAboveMax(fee, terms.maxFeePerTask);
        bool skip = callData.length == 0 && terms.argsMode == ARGS_DYNAMIC;
        if (
            !skip
                && (
                    callData.length < 4 || bytes4(callData[:4]) != terms.selector
                        || (terms.argsMode == ARGS_STATIC && keccak256(callData) != terms.argsHash)
                )
        ) revert CallNotAllowed(a.jobId);
        address signer = ECDSA.recover(assignmentDigest(a), dispatcherSignature);
        // The dispatcher is never zero (Governed refuses it), so a malformed signature fails here.
        if (signer != dispatcher) revert BadDispatcherSignature(signer);

        owner = ownerOf(a.jobId);
        _escrow(owner, a.taskId, a.jobId, a.attempt, msg.sender, fee);
    }

    /// @dev `owner`'s forwarder, deployed on its first use.
    function _forwarder(address owner) private returns (address forwarder) {
        forwarder = forwarderOf(owner);
        if (forwarder.code.length == 0) {
            new Forwarder{salt: bytes32(uint256(uint160(owner)))}();
        }
    }

    /// @dev Ask `forwarder` to call `target` with exactly `gasLimit` gas; on failure copy at
    ///      most 256 bytes of the revert data, so a target cannot exhaust our gas with a huge buffer.
    function _forward(address forwarder, address target, uint64 gasLimit, bytes calldata callData)
        private
        returns (bool success, bytes memory revertData)
    {
        bytes memory request = abi.encodeCall(Forwarder.forward, (target, gasLimit, callData));
        // The target must get the full gas the owner granted, so that a performer cannot make
        // a task fail on purpose by sending too little gas (EIP-150 keeps 1/64 at each hop).
        // The forwarder also copies the call data into memory before calling: 6 gas a word and
        // the quadratic part of memory expansion.
        uint256 words = (callData.length + 31) / 32;
        uint256 forwarderGas =
            uint256(gasLimit) + uint256(gasLimit) / 63 + _FORWARDER_GAS + 6 * words + (words * words) / 512;
        uint256 needed = forwarderGas + forwarderGas / 63 + _GAS_AFTER_CALL;
        if (gasleft() < needed) revert InsufficientGasForTarget(gasleft(), needed);
        assembly ("memory-safe") {
            success := call(forwarderGas, forwarder, 0, add(request, 0x20), mload(request), 0, 0)
        }
        if (success) return (true, "");
        revertData = new bytes(_MAX_RETURN_DATA);
        assembly ("memory-safe") {
            let copied := returndatasize()
            if gt(copied, _MAX_RETURN_DATA) { copied := _MAX_RETURN_DATA }
            returndatacopy(add(revertData, 0x20), 0, copied)
            mstore(revertData, copied)
        }
    }
}
