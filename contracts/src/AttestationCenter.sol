// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {BLS12381} from "./BLS12381.sol";
import {ECDSA} from "./ECDSA.sol";
import {EIP712} from "./EIP712.sol";
import {OperatorRegistry} from "./OperatorRegistry.sol";

/// @notice What the AttestationCenter needs of the TaskExecutionHub: releasing a task's escrow.
interface ITaskSettlement {
    function settle(uint256 taskId, uint256 jobId, uint32 attempt, address performer, bool approve, bool reopen)
        external;
}

/// @title AttestationCenter
/// @notice Records the network's decision on each task attempt, proven by one aggregate
///         BLS signature of operators holding enough stake.
///
///         A submission names the task attempt, the result (the performer's claim, signed by
///         its operator key, EIP-712; or, when the performer died before it could report,
///         unsigned: the attesters built it from the chain), the decision (approve or reject), the
///         ids of the operators who signed it (one byte each, strictly increasing: no
///         duplicates) and their aggregate signature over the vote message, which binds the
///         whole TaskInfo (so a vote for one performer's result counts for nothing else):
///             keccak256(abi.encode(VOTE_TAG, chainId, this, taskId, jobId, attempt,
///                                  performerId, resultHash, approve)).
///         With T the total active stake and S the signers' stake, an approval needs
///         3·S ≥ 2·T and a rejection 3·S ≥ T (protocol/quorum.py states the same rule).
///         The performer may co-sign, but its stake never counts toward S: nobody attests
///         to their own work. (Its co-signature makes the common case cheap: when the whole
///         active set signed, the aggregate key is read as stored, with nothing subtracted.)
///         A task is approved at most once; each attempt is decided at most once.
///
///         A decision settles the task's fee on the TaskExecutionHub and must name exactly the
///         execution the hub recorded (job, attempt, performer), or it reverts: an approval
///         releases the escrow to the performer; a rejection refunds the owner, and when two
///         thirds of the stake signed it, also penalises the performer in the OperatorRegistry
///         and lets a later attempt of the task execute (the hub reopens it).
/// @dev Task state is packed 8 bits per task (bit 0: approved, bit a: attempt a decided),
///      32 tasks per storage word, so sequential task ids share slots. Reward counters are
///      packed 8 × uint32 per word by operator id.
contract AttestationCenter is EIP712 {
    struct TaskInfo {
        uint256 taskId;
        uint256 jobId;
        uint32 attempt;
        uint8 performerId;
        bytes32 resultHash;
    }

    /// @dev The signers of a submission, as the registry sees them now.
    struct Tally {
        uint256 signers;
        uint256 signedStake;
        uint256 totalStake;
        bytes signersKey;
        address performerAccount;
    }

    bytes public constant SIGNATURE_DST = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
    bytes32 public constant VOTE_TAG = keccak256("TriggerX.AttestationVote.v2");
    bytes32 public constant TASK_RESULT_TYPEHASH = keccak256(
        "TaskResult(uint256 taskId,uint256 jobId,uint32 attempt,uint8 performerId,bytes32 resultHash)"
    );
    uint32 public constant MAX_ATTEMPT = 7;

    OperatorRegistry public immutable registry;
    ITaskSettlement public immutable hub;
    mapping(uint256 => uint256) private _taskFlags;
    mapping(uint256 => uint256) private _attested;
    mapping(uint256 => uint256) private _executed;
    mapping(uint256 => uint256) private _rejected;

    event TaskSubmitted(
        uint256 indexed taskId,
        uint256 indexed jobId,
        uint8 indexed performerId,
        uint32 attempt,
        bytes32 resultHash,
        uint256 signerBitmap,
        uint256 signedStake,
        uint256 totalStake
    );
    event TaskRejected(
        uint256 indexed taskId,
        uint256 indexed jobId,
        uint8 indexed performerId,
        uint32 attempt,
        bytes32 resultHash,
        uint256 signerBitmap,
        uint256 signedStake,
        uint256 totalStake
    );

    error BadAttempt(uint32 attempt);
    error TaskAlreadyApproved(uint256 taskId);
    error AttemptAlreadyDecided(uint256 taskId, uint32 attempt);
    error NoActiveStake();
    error SignersNotStrictlyIncreasing(uint256 position);
    error InactiveSigner(uint8 id);
    error UnknownPerformer(uint8 id);
    error BadPerformerSignature(address recovered, address expected);
    error QuorumNotReached(uint256 signedStake, uint256 totalStake, bool approve);
    error InvalidAggregateSignature();

    constructor(OperatorRegistry operatorRegistry, ITaskSettlement executionHub)
        EIP712("TriggerX AttestationCenter", "2")
    {
        registry = operatorRegistry;
        hub = executionHub;
    }

    /// @param signerIds the signers' operator ids, one byte each, strictly increasing.
    function submitTask(
        TaskInfo calldata task,
        bool approve,
        bytes calldata performerSignature,
        bytes calldata aggregateSignature,
        bytes calldata signerIds
    ) external {
        _checkUndecided(task);
        Tally memory tally = _tally(task.performerId, signerIds);
        if (!quorumReached(tally.signedStake, tally.totalStake, approve)) {
            revert QuorumNotReached(tally.signedStake, tally.totalStake, approve);
        }
        _checkPerformer(task, performerSignature, tally.performerAccount);
        bytes memory message = abi.encodePacked(voteMessage(task, approve));
        if (!BLS12381.verify(tally.signersKey, message, SIGNATURE_DST, aggregateSignature)) {
            revert InvalidAggregateSignature();
        }

        _taskFlags[task.taskId >> 5] |= ((approve ? 1 : 0) | (1 << task.attempt)) << ((task.taskId & 31) * 8);
        _count(_attested, tally.signers);
        _increment(approve ? _executed : _rejected, task.performerId);
        // Every decision names an execution the hub recorded (task, job, attempt, performer), or
        // reverts: nobody can decide attempts that never ran (future tasks included). A
        // rejection refunds the owner; only one that two thirds of the stake signed (proven)
        // also penalises the performer and reopens the task for a later attempt, so a colluding
        // third can block a payment but slash nobody, nor make a target run twice.
        bool proven = !approve && quorumReached(tally.signedStake, tally.totalStake, true);
        hub.settle(task.taskId, task.jobId, task.attempt, tally.performerAccount, approve, proven);
        if (proven) registry.penalize(task.performerId);
        if (approve) {
            emit TaskSubmitted(
                task.taskId,
                task.jobId,
                task.performerId,
                task.attempt,
                task.resultHash,
                tally.signers,
                tally.signedStake,
                tally.totalStake
            );
        } else {
            emit TaskRejected(
                task.taskId,
                task.jobId,
                task.performerId,
                task.attempt,
                task.resultHash,
                tally.signers,
                tally.signedStake,
                tally.totalStake
            );
        }
    }

    /// @notice The quorum rule: approve needs 3·signed ≥ 2·total, reject 3·signed ≥ total.
    function quorumReached(uint256 signedStake, uint256 totalStake, bool approve) public pure returns (bool) {
        return totalStake > 0 && signedStake * 3 >= totalStake * (approve ? 2 : 1);
    }

    /// @notice The 32 bytes attesters sign (with BLS) to vote on a task attempt's claimed result.
    function voteMessage(TaskInfo calldata task, bool approve) public view returns (bytes32) {
        return keccak256(
            abi.encode(
                VOTE_TAG,
                block.chainid,
                address(this),
                task.taskId,
                task.jobId,
                task.attempt,
                task.performerId,
                task.resultHash,
                approve
            )
        );
    }

    /// @notice The EIP-712 digest a performer signs to claim `task`'s result.
    function taskResultDigest(TaskInfo calldata task) public view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(TASK_RESULT_TYPEHASH, task.taskId, task.jobId, task.attempt, task.performerId, task.resultHash)
        );
        return _typedDigest(structHash);
    }

    /// @notice Whether `taskId` was approved, and which attempts (bit a for attempt a) were decided.
    function taskStatus(uint256 taskId) external view returns (bool approved, uint8 decidedAttempts) {
        uint256 own = (_taskFlags[taskId >> 5] >> ((taskId & 31) * 8)) & 0xff;
        return (own & 1 != 0, uint8(own & 0xfe));
    }

    /// @notice Tasks operator `id` attested, performed (approved) and performed (rejected).
    function operatorCounters(uint8 id) external view returns (uint32 attested, uint32 executed, uint32 rejected) {
        return (_read(_attested, id), _read(_executed, id), _read(_rejected, id));
    }

    function _checkUndecided(TaskInfo calldata task) private view {
        if (task.attempt == 0 || task.attempt > MAX_ATTEMPT) revert BadAttempt(task.attempt);
        uint256 own = _taskFlags[task.taskId >> 5] >> ((task.taskId & 31) * 8);
        if (own & 1 != 0) revert TaskAlreadyApproved(task.taskId);
        if (own & (1 << task.attempt) != 0) revert AttemptAlreadyDecided(task.taskId, task.attempt);
    }

    function _tally(uint8 performerId, bytes calldata signerIds) private view returns (Tally memory tally) {
        OperatorRegistry.QuorumContext memory context = registry.quorumContext(performerId);
        if (context.totalStake == 0) revert NoActiveStake();
        tally.totalStake = context.totalStake;
        tally.performerAccount = context.performerAccount;
        tally.signers = _signerBitmap(signerIds, context.activeBitmap);

        // Add up the signers' keys and stakes, or, when fewer operators stayed silent than
        // signed, take the whole active set's and subtract the silent ones'.
        uint256 silent = context.activeBitmap & ~tally.signers;
        if (signerIds.length <= _popcount(silent)) {
            tally.signersKey = new bytes(BLS12381.G1_LENGTH);
            for (uint256 i = 0; i < signerIds.length; ++i) {
                (bytes32[3] memory key, uint96 stake) = registry.packedKeyAndStake(uint8(signerIds[i]));
                tally.signersKey = BLS12381.g1Add(tally.signersKey, BLS12381.unpackG1(key));
                tally.signedStake += stake;
            }
        } else {
            tally.signersKey = BLS12381.unpackG1(context.aggregateKey);
            tally.signedStake = context.totalStake;
            for (uint256 id = 0; silent != 0; ++id) {
                if (silent & (1 << id) == 0) continue;
                silent &= ~(uint256(1) << id);
                (bytes32[3] memory key, uint96 stake) = registry.packedKeyAndStake(uint8(id));
                tally.signersKey = BLS12381.g1Add(tally.signersKey, BLS12381.g1Negate(BLS12381.unpackG1(key)));
                tally.signedStake -= stake;
            }
        }
        if (tally.signers & (1 << performerId) != 0) tally.signedStake -= context.performerStake;
    }

    /// @dev The bitmap of `signerIds`; each must be active and greater than the one before.
    function _signerBitmap(bytes calldata signerIds, uint256 active) private pure returns (uint256 bitmap) {
        uint256 previous;
        for (uint256 i = 0; i < signerIds.length; ++i) {
            uint256 id = uint8(signerIds[i]);
            if (i > 0 && id <= previous) revert SignersNotStrictlyIncreasing(i);
            if (active & (1 << id) == 0) revert InactiveSigner(uint8(id));
            bitmap |= 1 << id;
            previous = id;
        }
    }

    /// @dev The performer must be an operator; its signature, when given, must be its own. An
    ///      unsigned result gives nobody power the quorum lacks: the decision must still name
    ///      the execution the hub recorded, and two thirds of the stake could reject a signed
    ///      claim just as well.
    function _checkPerformer(TaskInfo calldata task, bytes calldata signature, address expected) private view {
        if (expected == address(0)) revert UnknownPerformer(task.performerId);
        if (signature.length == 0) return;
        address recovered = ECDSA.recover(taskResultDigest(task), signature);
        if (recovered != expected) revert BadPerformerSignature(recovered, expected);
    }

    /// @dev Add one to the counter of every operator in `bitmap`, writing each storage word once.
    function _count(mapping(uint256 => uint256) storage counters, uint256 bitmap) private {
        for (uint256 word = 0; bitmap != 0; ++word) {
            uint256 group = bitmap & 0xff;
            bitmap >>= 8;
            if (group == 0) continue;
            uint256 increments;
            for (uint256 lane = 0; group != 0; ++lane) {
                if (group & 1 != 0) increments |= uint256(1) << (lane * 32);
                group >>= 1;
            }
            counters[word] += increments;
        }
    }

    function _increment(mapping(uint256 => uint256) storage counters, uint8 id) private {
        counters[uint256(id) >> 3] += uint256(1) << ((uint256(id) & 7) * 32);
    }

    function _read(mapping(uint256 => uint256) storage counters, uint8 id) private view returns (uint32) {
        return uint32(counters[uint256(id) >> 3] >> ((uint256(id) & 7) * 32));
    }

    function _popcount(uint256 x) private pure returns (uint256 count) {
        for (; x != 0; ++count) {
            x &= x - 1;
        }
    }
}
